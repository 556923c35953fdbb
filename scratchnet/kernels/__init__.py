"""The convolution and pooling kernels behind the layers, from the definition to the fast paths.

Read in this order:

    loops.py          the definitions, one Python loop per index (convolution, grouped and
                      depthwise, max and average pooling): the oracle the tests trust
    scipy_conv.py     the readable reference: scipy.signal on one 2-D channel slice at a time
    im2col.py         the fast core: im2col patches and large matrix products
    col2im.py         its input gradient, a loop over kernel offsets
    winograd.py       Winograd's F(4x4, 3x3) for 3x3 stride-1 convolutions
    depthwise.py      depthwise convolution as a loop over kernel offsets, no patch matrix
    grouped.py        Conv2D(groups=g) on the im2col core

and the plumbing they share:

    padding.py        zero padding a chunk of images at a time, in scratch memory
    views.py          the cells one kernel (or pooling window) offset reads, as strided views
    workspace.py      scratch arrays reused from one call to the next, per thread
    chunk_workers.py  independent chunks of a kernel on a few threads (an experiment, off by default)
"""
