"""Convolution kernels: a readable scipy reference and a fast im2col core."""
