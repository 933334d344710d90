"""Notebook 12: plausible wrong answers (see ``benchmarks/mutations.py``)."""

CIN_END = """
    gamma = style @ weight
    beta = style @ bias
    return normalized * gamma[:, :, None, None] + beta[:, :, None, None]
"""

MUTANTS = [
    ("conditional_instance_norm", "unbiased variance", """
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), unbiased=True, keepdim=True)
    normalized = (x - mean) / torch.sqrt(var + eps)
    """ + CIN_END),
    ("conditional_instance_norm", "eps added outside the square root", """
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
    normalized = (x - mean) / (torch.sqrt(var) + eps)
    """ + CIN_END),
    ("conditional_instance_norm", "batch statistics (over N, H, W): batch normalization", """
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    normalized = (x - mean) / torch.sqrt(var + eps)
    """ + CIN_END),
    ("conditional_instance_norm", "layer statistics (over C, H, W)", """
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    var = x.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
    normalized = (x - mean) / torch.sqrt(var + eps)
    """ + CIN_END),
    ("conditional_instance_norm", "the first style's parameters for every image", """
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
    normalized = (x - mean) / torch.sqrt(var + eps)
    return normalized * weight[0][None, :, None, None] + bias[0][None, :, None, None]
    """),
    ("conditional_instance_norm", "shift and scale swapped", """
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
    normalized = (x - mean) / torch.sqrt(var + eps)
    gamma = style @ weight
    beta = style @ bias
    return normalized * beta[:, :, None, None] + gamma[:, :, None, None]
    """),
]
