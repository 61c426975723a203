"""Small building blocks shared by models."""

from __future__ import annotations

import warnings

import torch
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
}


def dense_stack(sizes: list[int], activation: str, dropout: float,
                dropout_layer: type[nn.Module] = nn.Dropout) -> nn.Sequential:
    """Linear -> activation -> dropout for each consecutive pair in `sizes`."""
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), ACTIVATIONS[activation]()]
        if dropout:
            layers.append(dropout_layer(dropout))
    return nn.Sequential(*layers)


class BitsDropout(nn.Module):
    """nn.Dropout's function with a cheaper mask on CPU: each element is kept when its own byte of a 64-bit
    random draw clears a threshold (8 elements per draw), instead of a Bernoulli draw per element, and the
    kept elements are scaled by one float mask, so the backward pass is a single product. On 2 cores
    nn.Dropout spent 1.5 ms of an 8 ms step of the tabular recipe's MLP (512 rows x 4 members x 128) drawing
    its mask; 15 bits per element and a 0/1 mask scaled separately 0.72 ms forward and backward for 256 rows;
    this 0.41. The drop probability is p rounded to 1/256 (0.15 -> 0.1484); kept values are scaled by the
    exact inverse of the keep probability, so the expected output is the input, as with nn.Dropout. On other
    devices it is nn.Dropout."""

    LEVELS = 1 << 8

    def __init__(self, p: float) -> None:
        super().__init__()
        self.set_p(p)

    def set_p(self, p: float) -> None:
        """A new drop probability (training.dropout_schedule changes it as training goes)."""
        self.p = p
        self.threshold = round(p * self.LEVELS)  # dropped when the byte, uniform on [0, 255], is below
        self.scale = self.LEVELS / (self.LEVELS - self.threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.p:
            return x
        if x.device.type != "cpu":
            return nn.functional.dropout(x, self.p, True)
        n = x.numel()
        bits = torch.empty((n + 7) // 8, dtype=torch.int64).random_(-(1 << 63), None)  # all 64 bits uniform
        keep = bits.view(torch.uint8)[:n].view(x.shape) >= self.threshold
        return x * keep.to(x.dtype).mul_(self.scale)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def masked_mean(embedded: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the sequence of (N, L, D) using only positions where mask (N, L) is true."""
    mask = mask.unsqueeze(-1).to(embedded.dtype)
    total = (embedded * mask).sum(dim=1)
    return total / mask.sum(dim=1).clamp(min=1.0)


def real_tokens(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The non-zero ids of right-padded rows (N, L) back to back, and where each row starts.

    EmbeddingBag takes this form on its fast path; given padded rows and a padding_idx it takes
    a generic path about 20x slower on CPU (measured on IMDB batches of 128 x ~800 ids).
    """
    real = tokens != 0
    counts = real.sum(dim=1)
    offsets = torch.zeros_like(counts)
    torch.cumsum(counts[:-1], dim=0, out=offsets[1:])
    return tokens[real], offsets


def masked_max(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over the sequence of (N, L, D) ignoring padded positions (all-padding rows give 0)."""
    filled = features.masked_fill(~mask.unsqueeze(-1), float("-inf"))
    out = filled.max(dim=1).values
    return torch.where(torch.isinf(out), torch.zeros_like(out), out)


class Head(nn.Module):
    """Final linear layer; squeezes to (N,) when there is one output."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x)
        return out.squeeze(-1) if out.shape[-1] == 1 else out


class TokenPool(nn.Module):
    """A text (right-padded token ids) pooled into one vector: the mean of its token vectors, or their
    TF-IDF weighted sum (`tfidf`: each id weighted by its idf, the weights of a text scaled to unit L2
    norm, as scikit-learn's TfidfVectorizer does; with data.unique_tokens the term frequency is binary),
    or their sum over the square root of the text's length (`l2`: TF-IDF's per-position weights without the
    idf, so nothing is fitted on the texts; a text's vector grows with its evidence, unlike the mean).

    The idf of every id is a buffer, set once from the training texts (`set_document_frequency`) and
    saved with the weights, so prediction, export and serving weigh tokens exactly as training did.
    """

    def __init__(self, vocab_size: int, dim: int, pooling: str = "mean", sparse: bool = False,
                 filled: bool = True) -> None:
        super().__init__()
        self.pooling = pooling
        # Id 0 is padding: forward hands the table only the real ids of each row (see real_tokens),
        # so padded and unpadded rows pool the same and row 0 is never read. With `filled` False the table
        # is left unfilled for model.embedding_init to fill (drawing torch's N(0, 1) first: 0.2 s on IMDB).
        table = torch.empty(vocab_size, dim)
        if filled:
            nn.init.normal_(table)  # what nn.EmbeddingBag draws by itself
        self.embedding = nn.EmbeddingBag(vocab_size, dim, mode="mean" if pooling == "mean" else "sum", sparse=sparse,
                                         _weight=table)
        with torch.no_grad():
            self.embedding.weight[0].zero_()
        if pooling == "tfidf":
            self.register_buffer("idf", torch.ones(vocab_size))
        self._last: tuple | None = None  # (tokens, X, X^T) of the last training batch (see tfidf_matrix)
        # Explanations need each token's own vector: with `per_token` set (honed explain) the pool takes the
        # gathered path, whose token vectors pass through this named layer that attributions attach to.
        self.per_token = False
        self.token_vectors = nn.Identity()

    @torch.no_grad()
    def set_document_frequency(self, frequency: torch.Tensor, documents: int) -> None:
        """idf = ln((1 + documents) / (1 + frequency)) + 1 (scikit-learn's smoothed idf)."""
        self.idf.copy_(torch.log((1.0 + documents) / (1.0 + frequency.double())).float() + 1.0)

    def token_weights(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, L) weights of a padded batch: idf (or 1), 0 on padding, each row of unit L2 norm."""
        real = tokens != 0
        weights = self.idf[tokens] * real if self.pooling == "tfidf" else real.to(torch.float32)
        return weights / weights.norm(dim=1, keepdim=True).clamp(min=1e-12)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.per_token or torch.compiler.is_exporting():
            return self.gathered(tokens)
        if self.pooling == "mean":
            return self.embedding(*real_tokens(tokens))
        if self.pooling == "l2":  # every position weighs 1 / sqrt(length): a sum, scaled once per text
            return self.embedding(*real_tokens(tokens)) / (tokens != 0).sum(dim=1, keepdim=True).clamp(min=1).sqrt()
        if self.embedding.sparse:  # mini-batch steps on a sparse table: only the batch's rows get gradients
            real = tokens != 0
            return self.embedding(*real_tokens(tokens), per_sample_weights=self.token_weights(tokens)[real])
        return SparseProduct.apply(self.embedding.weight, *self.tfidf_matrix(tokens))

    def tfidf_matrix(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The batch's TF-IDF matrix X (texts x vocabulary) as sparse CSR, and X^T when gradients are on.

        A full-batch optimizer (L-BFGS) evaluates the same batch many times in one step, so the
        matrices of the last training batch are kept: a repeat costs two sparse products, X @ W and
        X^T @ G, about 15x less than EmbeddingBag's dense backward on a CPU.
        """
        if self._last is not None and self._last[0] is tokens:
            return self._last[1], self._last[2]
        real = tokens != 0
        rows, cols = real.nonzero(as_tuple=True)  # row-major: each text's ids in order
        ids, values = tokens[rows, cols], self.token_weights(tokens)[rows, cols]
        vocab, texts = self.embedding.num_embeddings, tokens.shape[0]
        with warnings.catch_warnings():  # "sparse CSR support is in beta": these two products are tested here
            warnings.simplefilter("ignore", UserWarning)
            x = torch.sparse_csr_tensor(starts_of(real.sum(dim=1)), ids, values, (texts, vocab))
            if not torch.is_grad_enabled():
                return x, None
            order = torch.argsort(ids, stable=True)
            xt = torch.sparse_csr_tensor(starts_of(torch.bincount(ids, minlength=vocab)), rows[order], values[order],
                                         (vocab, texts))
        self._last = (tokens, x, xt)
        return x, xt

    def gathered(self, tokens: torch.Tensor) -> torch.Tensor:
        """The same pooling as a gather and a sum: for export, where ONNX's form of EmbeddingBag
        (a loop over bags) runs 30x slower in ONNX Runtime than this."""
        vectors = self.token_vectors(nn.functional.embedding(tokens, self.embedding.weight))
        if self.pooling != "mean":
            return (vectors * self.token_weights(tokens).unsqueeze(-1)).sum(dim=1)
        return masked_mean(vectors, tokens != 0)


def starts_of(counts: torch.Tensor) -> torch.Tensor:
    """CSR row starts from per-row counts: [0, c0, c0 + c1, ...]."""
    starts = torch.zeros(len(counts) + 1, dtype=torch.int64, device=counts.device)
    torch.cumsum(counts, dim=0, out=starts[1:])
    return starts


class SparseProduct(torch.autograd.Function):
    """X @ W for a sparse (CSR) X and a dense W, with W's gradient X^T @ G from a prepared CSR X^T
    (PyTorch's own autograd of a sparse product is ~15x slower on CPU)."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, x: torch.Tensor, xt: torch.Tensor) -> torch.Tensor:
        ctx.xt = xt
        return x @ weight

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return ctx.xt @ grad.contiguous(), None, None


def set_document_frequency(model: nn.Module, frequency: torch.Tensor, documents: int) -> None:
    """Give every TF-IDF pool of `model` the training texts' document frequencies (no-op for other models)."""
    for module in model.modules():
        if isinstance(module, TokenPool) and module.pooling == "tfidf":
            module.set_document_frequency(frequency, documents)
