"""Every stage kind a network is built from, declared ONCE (issue 20, item 7), and `Stage`,
one step of a network's list of stages.

Both interpreters read this table and nothing else about a kind: `jaxnets.models.stages` (the
training forward through a `Layers` record, the hand-written pairs with their backwards in
reverse) and `reference_numpy.stages` (the same in NumPy float64). A kind names its pair, and
each backend finds `{pair}_forward` / `{pair}_backward` (and the `Layers` field `pair`) among
its own ops, which share cs231n's names and argument orders:

    forward(*inputs, *constants, *params, *stage.args, *context, **stage.options)
        -> (*outputs, cache)
    backward(*doutputs, cache) -> the gradients `grads` lists, in that order
                                  (one array is returned bare, as cs231n's relu_backward)

The network's values live on a stream (a stack): a stage takes its `inputs` from the top and
puts its `outputs` back, so a sequence stage (the whole scan of an LSTM) and a stage with two
outputs (`lstm_step`: next_h and next_c) are ordinary entries. The loss reads the top value;
a value no later stage read gets a zero gradient. A parameter's gradient is the SUM over the
stages that use it (the chain rule for a shared parameter; a per-kind "accumulates" flag
would only restate it): an embedding's accumulation over repeated indices and a recurrent
layer's over time steps happen inside their backwards.

Pure data and string formatting: nothing here computes a network, so a mistake in a pair's
maths cannot hide in a shared helper.
"""
from typing import NamedTuple


class StageKind(NamedTuple):
    """How one kind of stage is called, in both backends.

    pair: the op's name (`affine` -> affine_forward, affine_backward, `Layers.affine`).
    params: the parameters' roles, in the forward's argument order after its inputs and
        constants; a `Stage` gives them names (`stage` names role r of index i `f"{r}{i}"`).
    optional: roles a model may leave out (a bias before batch norm, which would subtract
        it): zeros of the output width in its place, and its gradient is not reported.
    inputs / outputs: values taken from the top of the stream / put back.
    constants: non-differentiated arrays the interpreter makes for the forward after the
        inputs: "initial_state" (zeros (N, H), H the first dimension of the role `state_from`:
        a recurrent layer's h0) or "randomness" (dropout's draws: a key folded with the
        stage's index in JAX, the next uniform draws given to the NumPy twin).
    grads: what the backward returns, in order: "inputs" (one per input; left out where the
        input is an index, as the embedding's), "constants" (computed and dropped), "params".
    context: trailing arguments only some backends take: "layout" (JAX's conv forms).
    statistics: batch statistics in training (state running_mean{i}, running_var{i}, i the
        stage's index); inference calls `{pair}_inference(h, *params, mean, var, **options)`.
    train_only: the identity in inference (dropout).
    gates: a recurrent kind's gate count (Wx is (D, gates * H)), for initialisation.
    """

    pair: str
    params: tuple = ()
    optional: tuple = ()
    inputs: int = 1
    outputs: int = 1
    constants: tuple = ()
    grads: tuple = ("inputs", "params")
    context: tuple = ()
    statistics: bool = False
    train_only: bool = False
    state_from: str = ""
    gates: int = 0


#: the pre-norm block's parameters in its forward's argument order (ops.TRANSFORMER_BLOCK_PARAMS)
TRANSFORMER_BLOCK_PARAMS = ("ln1_gamma", "ln1_beta", "Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo",
                            "ln2_gamma", "ln2_beta", "W1", "b1", "W2", "b2")

_RECURRENT = {"constants": ("initial_state",), "grads": ("inputs", "constants", "params"), "state_from": "Wh"}

KINDS = {
    "affine": StageKind("affine", ("W", "b"), optional=("b",)),
    "conv": StageKind("conv", ("W", "b"), optional=("b",), context=("layout",)),
    "relu": StageKind("relu", grads=("inputs",)),
    "max_pool": StageKind("max_pool", grads=("inputs",)),
    "batchnorm": StageKind("batchnorm", ("gamma", "beta"), statistics=True),
    "spatial_batchnorm": StageKind("spatial_batchnorm", ("gamma", "beta"), statistics=True),
    "layernorm": StageKind("layernorm", ("gamma", "beta")),
    "dropout": StageKind("dropout", constants=("randomness",), grads=("inputs",), train_only=True),
    "word_embedding": StageKind("word_embedding", ("W",), grads=("params",)),
    "temporal_affine": StageKind("temporal_affine", ("W", "b")),
    "temporal_layernorm": StageKind("temporal_layernorm", ("gamma", "beta")),
    "positional_embedding": StageKind("positional_embedding", ("W",)),
    # args: heads, mask, causal, activation
    "transformer_block": StageKind("transformer_block", TRANSFORMER_BLOCK_PARAMS),
    "last_step": StageKind("last_step", grads=("inputs",)),
    "rnn": StageKind("rnn", ("Wx", "Wh", "b"), gates=1, **_RECURRENT),
    "lstm": StageKind("lstm", ("Wx", "Wh", "b"), gates=4, **_RECURRENT),
    "gru": StageKind("gru", ("Wx", "Wh", "b", "bh"), gates=3, **_RECURRENT),
    # one step of a recurrence, the state as inputs: (x, prev_h[, prev_c]) -> next_h[, next_c]
    "rnn_step": StageKind("rnn_step", ("Wx", "Wh", "b"), inputs=2, gates=1),
    "lstm_step": StageKind("lstm_step", ("Wx", "Wh", "b"), inputs=3, outputs=2, gates=4),
    "gru_step": StageKind("gru_step", ("Wx", "Wh", "b", "bh"), inputs=2, gates=3),
}

#: the recurrent layers over a whole sequence: a sequence model's `cell`
CELLS = ("rnn", "lstm", "gru")


class Stage(NamedTuple):
    """One stage of a network: its kind (a KINDS key), its index (the number in its parameter
    and state names, and the dropout stream it draws from), its parameters' names (one per
    role of the kind), its static positional arguments and its keyword options as (name,
    value) pairs (hashable, so a stage list can key a compiled program)."""

    kind: str
    index: int | str = ""
    params: tuple = ()
    args: tuple = ()
    options: tuple = ()

    @property
    def decl(self):
        return KINDS[self.kind]


def stage(kind, index="", *args, **options):
    """A Stage of `kind` whose parameters are named `f"{role}{index}"` (W1, b1; gamma2;
    W_vocab with index "_vocab"; Wx, Wh, b with index "")."""
    if kind not in KINDS:
        raise ValueError(f"unknown stage kind {kind!r}; choose one of {', '.join(KINDS)}")
    return Stage(kind, index, tuple(f"{role}{index}" for role in KINDS[kind].params), tuple(args),
                 tuple(sorted(options.items())))


def state_names(s):
    """The running statistics a `statistics` stage keeps: (running_mean{i}, running_var{i})."""
    return f"running_mean{s.index}", f"running_var{s.index}"
