"""Fusion math and fused modules that both the model zoo and reparameterization use (conv+BN folding, kernel
padding and merging, the fused conv modules). Below models/ and reparam/, so neither imports the other for them."""
