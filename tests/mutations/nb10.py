"""Notebook 10: plausible wrong answers (see ``benchmarks/mutations.py``)."""

MUTANTS = [
    ("gram_matrix", "F^T F: a (HW, HW) matrix of positions, not of channels", """
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    gram = f.transpose(1, 2) @ f
    if normalize:
        gram = gram / (c * h * w)
    return gram
    """),
    ("gram_matrix", "never normalized", """
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    return f @ f.transpose(1, 2)
    """),
    ("gram_matrix", "divided by H*W only", """
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    gram = f @ f.transpose(1, 2)
    if normalize:
        gram = gram / (h * w)
    return gram
    """),
    ("gram_matrix", "the batch flattened into the channels (one Gram for the whole batch)", """
    n, c, h, w = features.shape
    f = features.transpose(0, 1).reshape(c, n * h * w)
    gram = (f @ f.T).expand(n, c, c)
    if normalize:
        gram = gram / (c * h * w)
    return gram
    """),
    ("gram_matrix", "reshape to (N, H*W, C) without moving the channels (mixes channels and positions)", """
    n, c, h, w = features.shape
    f = features.reshape(n, h * w, c)
    gram = f.transpose(1, 2) @ f
    if normalize:
        gram = gram / (c * h * w)
    return gram
    """),
    ("gram_matrix", "centred features (a covariance, not a Gram matrix)", """
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    f = f - f.mean(dim=2, keepdim=True)
    gram = f @ f.transpose(1, 2)
    if normalize:
        gram = gram / (c * h * w)
    return gram
    """),
    ("style_loss", "no square: the sum of the differences", """
    loss = 0.0
    for layer, target in targets.items():
        loss = loss + weights[layer] * (gram_matrix(features[layer]) - target).sum(dim=(1, 2))
    return loss
    """),
    ("style_loss", "one number for the batch (summed over the images)", """
    loss = 0.0
    for layer, target in targets.items():
        loss = loss + weights[layer] * (gram_matrix(features[layer]) - target).pow(2).sum()
    return loss
    """),
    ("style_loss", "mean over the matrix entries instead of the sum", """
    loss = 0.0
    for layer, target in targets.items():
        loss = loss + weights[layer] * (gram_matrix(features[layer]) - target).pow(2).mean(dim=(1, 2))
    return loss
    """),
    ("style_loss", "weights ignored", """
    loss = 0.0
    for layer, target in targets.items():
        loss = loss + (gram_matrix(features[layer]) - target).pow(2).sum(dim=(1, 2))
    return loss
    """),
    ("style_loss", "compares the features' own Gram matrix with the target's Gram matrix", """
    loss = 0.0
    for layer, target in targets.items():
        g = gram_matrix(features[layer])
        loss = loss + weights[layer] * (g - target @ target.transpose(1, 2)).pow(2).sum(dim=(1, 2))
    return loss
    """),
]
