/* compiler/driver/main.c: the `kiln` command: dispatch to a subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "guard.h"

static const char usage[] =
    "usage: kiln COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  compile MODEL   compile a model to an object file and a C header\n"
    "  dump MODEL      print the IR of a model (.yaml or .kir)\n"
    "  run MODEL       evaluate a model on .npy inputs (compiled, or --interp)\n"
    "  check MODEL     compare compiled code with the reference interpreter, layer by layer\n"
    "  bench MODEL     measure the compiled model's latency and throughput\n"
    "  import M.onnx   write an ONNX model as a kiln model and its weights\n"
    "\n"
    "'kiln COMMAND --help' describes each command. Every command also takes\n"
    "  --max-elements N         the largest tensor (in elements) a model may have\n"
    "                           (default 4294967296)\n"
    "  --max-weights-bytes N    the budget for all of a model's weights, as f32\n"
    "                           (default 4G; 512M, 8GiB, 1000000 are N too)\n"
    "  --max-workspace-bytes N  the budget for evaluating it at the command's batch\n"
    "                           (default 4G)\n"
    "  --allow-nonfinite        accept weights that hold NaN or infinities\n"
    "  -v, --verbose            print each stage and its time to standard error\n"
    "Outputs are renamed into place only when the whole command succeeded; an\n"
    "output may not be an input or another output (docs/cli.md, 'Files').\n"
    "'kiln --version' prints the version.\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    /* `kiln -v COMMAND ...` as well as `kiln COMMAND -v ...` */
    if ((strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--verbose") == 0) && argc > 2) {
        argv[1] = argv[2];
        argv[2] = (char *)"-v";
    }
    const char *cmd = argv[1];
    int sub_argc = argc - 1;
    if (kiln_cli_take_global_options(&sub_argc, argv + 1) != 0)
        return 2;
    argc = sub_argc + 1;
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("kiln %s\n", KILN_VERSION_STRING);
        return 0;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } commands[] = {{"dump", kiln_cmd_dump},   {"run", kiln_cmd_run},     {"compile", kiln_cmd_compile},
                    {"check", kiln_cmd_check}, {"bench", kiln_cmd_bench},
                    {"import", kiln_cmd_import}};
    /* Each command runs under the guard (guard.h): a process that LLVM
     * aborts or the kernel kills still ends in a message, exit status 1, and
     * no temporary file left behind. */
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(cmd, commands[i].name) == 0)
            return kiln_guard_run(cmd, commands[i].fn, argc - 1, argv + 1);
    fprintf(stderr, "kiln: error: unknown command '%s'\n\n%s", cmd, usage);
    return 2;
}
