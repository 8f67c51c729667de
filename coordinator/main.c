/* metafl-coordinator: placeholder main until the daemon lands (issue 5). */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            printf("usage: metafl-coordinator --config FILE.yaml\n");
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("metafl-coordinator %s\n", MFL_VERSION);
            return 0;
        }
    }
    fprintf(stderr, "metafl-coordinator: not implemented yet\n");
    return 1;
}
