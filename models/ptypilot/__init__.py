"""ptypilot's Python side: training, evaluation and plotting around the C++ physics.

The physics itself (probe, specimens, forward model, reconstructor, metrics) lives in C++ and is
reached through the compiled module ``ptypilot_core`` (built into ``build/python``), so that
training and the daemon run one implementation.
"""
