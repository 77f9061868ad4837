"""The oracles: each one small unit that produces evidence about a subject's derivative on a
case — a gradient source (`sources`: the rule, autodiff of the primal, the wired object, a
reference, a model's gradient modes), finite differences (`fd`), the rule in context
(`context`), jit / eager / vmap (`transforms`), forward mode (`forward_mode`), second order
(`second_order`). `jaxnets.gradcheck.checks` pairs them into the rows of a check table."""
