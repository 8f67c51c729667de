/* metafl: the operator's and auditor's tool. Dispatches to subcommands. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "core/log.h"

/* Add a subcommand: write cli/cmd_NAME.c with `int mfl_cmd_NAME(int, char **)`,
 * declare it here and add a row to the table. */
int mfl_cmd_keygen(int argc, char **argv);
int mfl_cmd_train(int argc, char **argv);
int mfl_cmd_eval(int argc, char **argv);
int mfl_cmd_audit(int argc, char **argv);
int mfl_cmd_status(int argc, char **argv);
int mfl_cmd_simulate(int argc, char **argv);
int mfl_cmd_privacy(int argc, char **argv);
int mfl_cmd_export(int argc, char **argv);
int mfl_cmd_report(int argc, char **argv);
int mfl_cmd_sites(int argc, char **argv);

const mfl_command_t mfl_commands[] = {
    {"keygen", "create a site's or the coordinator's key pair", mfl_cmd_keygen},
    {"audit", "verify or show a signed, hash-chained audit log", mfl_cmd_audit},
    {"status", "show the coordinator's round, sites and metrics; pause/resume/abort", mfl_cmd_status},
    {"sites", "list the sites (state, last seen, failures); revoke one's key", mfl_cmd_sites},
    {"simulate", "run a coordinator config with its sites in-process (no sockets)", mfl_cmd_simulate},
    {"privacy", "epsilon spent by, or noise needed for, the Gaussian mechanism (RDP)", mfl_cmd_privacy},
    {"report", "per-hospital results of a run (table, JSON, Markdown/HTML with plots)", mfl_cmd_report},
    {"export", "write a run's federated model as safetensors with its description", mfl_cmd_export},
    {"train", "meta-train an experiment offline (sinusoid, Fashion-MNIST, heart)", mfl_cmd_train},
    {"eval", "adapt saved parameters on held-out tasks and score them", mfl_cmd_eval},
    {NULL, NULL, NULL},
};

static void s_usage(FILE *out)
{
    fprintf(out, "usage: metafl COMMAND [ARGS...]\n\n"
                 "Federated meta-learning for hospital consortia: the operator's and\n"
                 "auditor's tool.\n\ncommands:\n");
    for (const mfl_command_t *c = mfl_commands; c->name; c++)
        fprintf(out, "  %-10s %s\n", c->name, c->summary);
    fprintf(out, "\nRun 'metafl COMMAND --help' for a command's options.\n"
                 "  --help       this text\n  --version    print the version\n");
}

int main(int argc, char **argv)
{
    mfl_log_set_program("metafl");
    if (argc < 2) {
        s_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        s_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("metafl %s\n", MFL_VERSION);
        return 0;
    }
    for (const mfl_command_t *c = mfl_commands; c->name; c++) {
        if (strcmp(argv[1], c->name) == 0)
            return c->run(argc - 1, argv + 1);
    }
    fprintf(stderr, "metafl: unknown command '%s' (see 'metafl --help')\n", argv[1]);
    return 2;
}
