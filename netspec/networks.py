"""The stage lists of the networks that are written as stages, built once for both backends
(`jaxnets.models` and `reference_numpy.models` call these with a model's config): cs231n's
FullyConnectedNet and deeper ConvNet, and the recurrent sequence models.

    fc_net:        {affine - [batch/layer norm] - ReLU - [dropout]} x (L - 1) - affine
    deep_conv_net: {conv (same padding) - [spatial batch norm] - ReLU - 2x2 max pool} x K
                   - affine - [batch norm] - ReLU - [dropout] - affine
    char_lm:       word embedding - RNN / LSTM / GRU - temporal affine
    row_lstm:      (the image as rows) RNN / LSTM / GRU - last step - affine
    transformer_lm: word embedding - positional embedding - pre-norm causal transformer
                   blocks - layer norm - temporal affine
The loss is the model's, after the list.
"""
from netspec.stages import Stage, stage

#: the norms' epsilon (cs231n's and PyTorch's default)
EPS = 1e-5


def fc_net_stages(hidden_dims, norm=None, dropout=0.0):
    """Hidden layer i (1-based) has W{i}, b{i} (no b{i} before batch norm) and gamma{i},
    beta{i}; dropout stage i draws from stream i."""
    stages = []
    for i in range(1, len(hidden_dims) + 1):
        stages.append(stage("affine", i))
        if norm:
            stages.append(stage(norm, i, eps=EPS))
        stages.append(stage("relu"))
        if dropout:
            stages.append(stage("dropout", i, rate=dropout))
    stages.append(stage("affine", len(hidden_dims) + 1))
    return tuple(stages)


def deep_conv_stages(n_conv, filter_size, batchnorm=True, dropout=0.0):
    """Conv k (1..n_conv): W{k}, stride 1, pad filter_size // 2; the hidden affine is n_conv + 1,
    the output affine n_conv + 2; dropout draws from stream n_conv + 1."""
    stages = []
    for i in range(1, n_conv + 1):
        stages.append(stage("conv", i, 1, filter_size // 2))
        if batchnorm:
            stages.append(stage("spatial_batchnorm", i, eps=EPS))
        stages += [stage("relu"), stage("max_pool", "", 2, 2, 2)]
    k = n_conv + 1
    stages.append(stage("affine", k))
    if batchnorm:
        stages.append(stage("batchnorm", k, eps=EPS))
    stages.append(stage("relu"))
    if dropout:
        stages.append(stage("dropout", k, rate=dropout))
    stages.append(stage("affine", k + 1))
    return tuple(stages)


def char_lm_stages(cell):
    """W_embed; the cell's Wx, Wh, b (and the GRU's bh); W_vocab, b_vocab."""
    return stage("word_embedding", "_embed"), stage(cell), stage("temporal_affine", "_vocab")


def row_lstm_stages(cell):
    """The cell's Wx, Wh, b (and bh) over the rows; the last step; W_out, b_out."""
    return stage(cell), stage("last_step"), stage("affine", "_out")


def transformer_lm_stages(blocks, heads, activation):
    """W_embed; W_pos; block i's TRANSFORMER_BLOCK_PARAMS suffixed _i (heads, no extra mask,
    causal, the MLP's activation); the final layer norm lnf_gamma, lnf_beta; W_vocab, b_vocab."""
    return (stage("word_embedding", "_embed"), stage("positional_embedding", "_pos"),
            *(stage("transformer_block", f"_{i}", heads, None, True, activation) for i in range(blocks)),
            Stage("temporal_layernorm", "f", ("lnf_gamma", "lnf_beta"), (), (("eps", EPS),)),
            stage("temporal_affine", "_vocab"))
