/* The `metafl` tool's subcommands. Each takes the arguments after its own
 * name (argv[0] is the subcommand name) and returns the process exit code:
 * 0 success, 1 failure, 2 usage error. Each answers --help. */
#ifndef MFL_CLI_COMMANDS_H
#define MFL_CLI_COMMANDS_H

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} mfl_command_t;

/* The table in main.c, ended by a zeroed entry. */
extern const mfl_command_t mfl_commands[];

#endif
