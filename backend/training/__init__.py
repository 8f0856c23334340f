"""Learning: `train` and `finetune` fit a network to a user's sparse labels on one scene; `pretrain`
fits the generic, sensor-agnostic model on synthetic scenes built from real ingredients
(`backend.synth`). Both are driven by typed configs (`config`), never by the command line's
namespace, so benchmarks and evaluations run them the way the CLI does without re-parsing argv.
"""
