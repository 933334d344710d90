"""Notebook 11: plausible wrong answers (see ``benchmarks/mutations.py``)."""

MUTANTS = [
    ("content_loss", "not relative: ||F - P||^2", """
    target = target.expand_as(features)
    return (features - target).pow(2).sum(dim=(1, 2, 3))
    """),
    ("content_loss", "one number for the batch", """
    target = target.expand_as(features)
    return (features - target).pow(2).sum() / target.pow(2).sum()
    """),
    ("content_loss", "relative to ||F||^2 instead of ||P||^2", """
    target = target.expand_as(features)
    return (features - target).pow(2).sum(dim=(1, 2, 3)) / features.pow(2).sum(dim=(1, 2, 3))
    """),
    ("content_loss", "norms, not squared norms", """
    target = target.expand_as(features)
    return (features - target).flatten(1).norm(dim=1) / target.flatten(1).norm(dim=1)
    """),
    ("content_loss", "the shared target's norm taken once for the whole batch", """
    error = (features - target).pow(2).sum(dim=(1, 2, 3))
    return error / target.pow(2).sum()
    """),
    ("style_transfer_loss", "TV of the whole batch given to each image", """
    content = sum(weights["content"] * content_loss(features[layer], target)
                  for layer, target in targets["content"].items())
    style_term = sum(weights["style"][layer] * (gram_matrix(features[layer]) - target).pow(2).sum(dim=(1, 2))
                     for layer, target in targets["style"].items())
    tv = weights["tv"] * tv_loss(x) / x[0].numel() * torch.ones(len(x))
    """),
    ("style_transfer_loss", "TV not divided by C H W", """
    content = sum(weights["content"] * content_loss(features[layer], target)
                  for layer, target in targets["content"].items())
    style_term = sum(weights["style"][layer] * (gram_matrix(features[layer]) - target).pow(2).sum(dim=(1, 2))
                     for layer, target in targets["style"].items())
    tv = weights["tv"] * torch.stack([tv_loss(x[n:n + 1]) for n in range(len(x))])
    """),
    ("style_transfer_loss", "style weights ignored", """
    content = sum(weights["content"] * content_loss(features[layer], target)
                  for layer, target in targets["content"].items())
    style_term = sum((gram_matrix(features[layer]) - target).pow(2).sum(dim=(1, 2))
                     for layer, target in targets["style"].items())
    tv = weights["tv"] * torch.stack([tv_loss(x[n:n + 1]) for n in range(len(x))]) / x[0].numel()
    """),
    ("style_transfer_loss", "content weight applied to the style term instead", """
    content = sum(content_loss(features[layer], target) for layer, target in targets["content"].items())
    style_term = sum(weights["content"] * weights["style"][layer] * (gram_matrix(features[layer]) - target).pow(2).sum(dim=(1, 2))
                     for layer, target in targets["style"].items())
    tv = weights["tv"] * torch.stack([tv_loss(x[n:n + 1]) for n in range(len(x))]) / x[0].numel()
    """),
    ("style_transfer_loss", "Gram difference not squared", """
    content = sum(weights["content"] * content_loss(features[layer], target)
                  for layer, target in targets["content"].items())
    style_term = sum(weights["style"][layer] * (gram_matrix(features[layer]) - target).abs().sum(dim=(1, 2))
                     for layer, target in targets["style"].items())
    tv = weights["tv"] * torch.stack([tv_loss(x[n:n + 1]) for n in range(len(x))]) / x[0].numel()
    """),
]
