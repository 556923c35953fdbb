"""to_torch_optimizer: scratchnet's optimizer and schedule as ``torch.optim`` objects.

scratchnet's Adam, AdamW and SGD follow torch.optim's update rules (optimizers.py), so a model
and its twin trained with these agree step by step:

    scratchnet                                   PyTorch
    Adam(lr, beta1, beta2, eps, weight_decay)    torch.optim.Adam(lr, betas, eps, weight_decay)  (L2)
    AdamW(lr, betas, eps, weight_decay)          torch.optim.AdamW(...)             (decoupled decay)
    SGD(lr, momentum, nesterov, weight_decay)    torch.optim.SGD(..., dampening=0)
    CosineAnnealing(initial, T_max, eta_min)     lr_scheduler.CosineAnnealingLR(T_max, eta_min),
                                                 stepped after every optimizer step
    any other schedule s(step)                   lr_scheduler.LambdaLR with base lr 1 and s

The torch loop: ``opt.zero_grad(); loss.backward(); opt.step(); scheduler.step()``.
"""

from __future__ import annotations


def to_torch_optimizer(optimizer, module):
    """(torch optimizer, scheduler or None) equivalent to a fresh scratchnet ``optimizer`` for ``module``.

    Only parameters with ``requires_grad`` are given to it (frozen layers stay untouched, as in
    scratchnet). Refused: an optimizer that already took steps (its moments are not copied),
    ``clipnorm`` (call ``torch.nn.utils.clip_grad_norm_`` before ``step`` instead) and
    ReduceOnPlateau (driven by a metric, not by the step count).
    """
    import torch

    from ..optimizers import SGD, Adam, AdamW
    from ..schedules import ConstantLR, CosineAnnealing, ReduceOnPlateau

    who = type(optimizer).__name__
    if optimizer.iterations:
        raise ValueError(f"to_torch_optimizer: the {who} already took {optimizer.iterations} steps; its "
                         "moments are not copied, so convert a fresh optimizer")
    if getattr(optimizer, "clipnorm", None) is not None:
        raise ValueError(f"to_torch_optimizer: {who}(clipnorm=...) has no torch.optim option; call "
                         "torch.nn.utils.clip_grad_norm_(params, clipnorm) before each step")
    params = [p for p in module.parameters() if p.requires_grad]
    schedule = optimizer.schedule
    cosine = type(schedule) is CosineAnnealing and schedule.steps_per_epoch is None
    lr = schedule.lr if type(schedule) is ConstantLR else schedule.initial if cosine else 1.0
    if type(optimizer) is AdamW:
        torch_opt = torch.optim.AdamW(params, lr=lr, betas=(optimizer.beta1, optimizer.beta2),
                                      eps=optimizer.eps, weight_decay=optimizer.weight_decay)
    elif type(optimizer) is Adam:
        torch_opt = torch.optim.Adam(params, lr=lr, betas=(optimizer.beta1, optimizer.beta2),
                                     eps=optimizer.eps, weight_decay=optimizer.weight_decay)
    elif type(optimizer) is SGD:
        torch_opt = torch.optim.SGD(params, lr=lr, momentum=optimizer.momentum, nesterov=optimizer.nesterov,
                                    weight_decay=optimizer.weight_decay)
    else:
        raise ValueError(f"to_torch_optimizer: no torch.optim counterpart for {who}; "
                         "supported: Adam, AdamW, SGD")
    if type(schedule) is ConstantLR:
        return torch_opt, None
    if cosine:
        return torch_opt, torch.optim.lr_scheduler.CosineAnnealingLR(torch_opt, T_max=schedule.T_max,
                                                                     eta_min=schedule.eta_min)
    if isinstance(schedule, ReduceOnPlateau):
        raise ValueError("to_torch_optimizer: ReduceOnPlateau follows a metric; use "
                         "torch.optim.lr_scheduler.ReduceLROnPlateau yourself")
    return torch_opt, torch.optim.lr_scheduler.LambdaLR(torch_opt, lambda step: schedule(step))
