"""The sentiment neuron: byte-level mLSTM language model, features, L1 probe (Radford et al. 2017)."""
