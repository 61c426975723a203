"""Sentence vectors from a frozen pretrained encoder, added to each text's own features.

data.encoder_features = all-minilm-l6-v2 gives every text, beside its token ids, the mean of the
encoder's final token states over the real word pieces, scaled to unit length (how the model was
trained to compare sentences). The encoder is never trained here, so a text's vector is computed
once: vectors are cached on disk by encoder, length limit and the texts themselves, and a search
that varies anything else (n-grams, regularization) reuses them.

A linear model on TF-IDF words plus these vectors beats either alone on small data sets (5-fold
cross-validation on the training rows of cr, mpqa and trec: 84.6/89.1/89.8% against 79.9/84.4/84.1%
for TF-IDF alone); the price is the encoder's time: about 7,500 word pieces a second on 2 CPU cores.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from honed.errors import UserError

log = logging.getLogger("honed")

MAX_PIECES = 128  # word pieces per text the encoder reads (all-MiniLM-L6-v2 was trained on 128)
TOKENS_PER_BATCH = 8192  # texts of similar length batched up to this many word pieces
PIECES_PER_SECOND = 7500  # measured on 2 CPU cores (all-MiniLM-L6-v2): for time estimates
PIECES_PER_WORD = 1.3


MEMO_TEXTS = 200_000  # sentence vectors kept in memory per encoder (a search asks for the same texts again)
_memo: dict[tuple[str, int], dict[str, np.ndarray]] = {}
_loaded: dict[tuple[str, int], tuple] = {}


class SentenceEncoder:
    """texts -> (N, hidden) float32 unit vectors. Vectors are kept per text in memory (a search's trials and
    its refit ask for overlapping subsets of the same texts) and per list of texts on disk (later runs)."""

    made_by = ""  # what else decides a vector, beside the name and length (the disk cache's key)

    def __init__(self, name: str, max_pieces: int = MAX_PIECES) -> None:
        self.name = name
        self.max_pieces = max_pieces

    def load(self) -> tuple:
        """(tokenizer, model), loaded once per process."""
        key = (self.name, self.max_pieces)
        if key not in _loaded:
            from honed.pretrained import encoder_folder

            folder = encoder_folder(self.name, key="data.encoder_features")
            try:
                import transformers
                from tokenizers import Tokenizer
            except ImportError:
                raise UserError("data.encoder_features needs transformers: pip install 'honed[transformer]'") from None
            transformers.logging.set_verbosity_error()
            transformers.utils.logging.disable_progress_bar()
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            tokenizer.no_padding()
            tokenizer.enable_truncation(self.max_pieces)
            _loaded[key] = (tokenizer, transformers.AutoModel.from_pretrained(str(folder)).eval())
        return _loaded[key]

    @property
    def dim(self) -> int:
        return int(self.load()[1].config.hidden_size)

    @staticmethod
    def states(model, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(texts, pieces, hidden) final states of padded `ids`."""
        return model(input_ids=ids, attention_mask=mask.long()).last_hidden_state

    def vectors(self, texts: list[str], remember: bool = False) -> np.ndarray:
        """Unit sentence vectors of `texts`; with `remember` (preparing a data set, not serving requests),
        looked up in and added to the memory and disk caches."""
        if not remember:
            return self.encode(texts) if texts else np.zeros((0, self.dim), np.float32)
        path = self.cache_path(texts)
        if path.is_file():
            try:
                vectors = np.load(path, allow_pickle=False)
                if vectors.shape[0] == len(texts):
                    return vectors
            except (OSError, ValueError):
                pass  # damaged: computed again below
        memo = _memo.setdefault((self.name, self.max_pieces), {})
        missing = list(dict.fromkeys(t for t in texts if t not in memo))
        if missing:
            started = time.perf_counter()
            if len(memo) + len(missing) > MEMO_TEXTS:
                memo.clear()
            memo.update(zip(missing, self.encode(missing)))
            log.info(f"data: {len(missing):,} sentence vectors from {self.name} in {time.perf_counter() - started:.1f} s")
        vectors = np.stack([memo[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)
        self.store(path, vectors)
        return vectors

    @staticmethod
    def store(path: Path, vectors: np.ndarray) -> None:
        from honed.files import atomic_write

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:  # a file object: np.save would add ".npy" to a temporary name
                np.save(f, vectors)

        atomic_write(path, write)

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> np.ndarray:
        tokenizer, model = self.load()
        pieces = [e.ids for e in tokenizer.encode_batch(texts)]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for rows in length_batches([len(p) for p in pieces]):
            ids = torch.zeros((len(rows), max(1, max(len(pieces[r]) for r in rows))), dtype=torch.long)
            for i, r in enumerate(rows):
                ids[i, : len(pieces[r])] = torch.tensor(pieces[r], dtype=torch.long)
            mask = ids != 0
            states = self.states(model, ids, mask)
            mean = (states * mask.unsqueeze(-1)).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1)
            out[rows] = torch.nn.functional.normalize(mean, dim=1).numpy()
        return out

    def cache_path(self, texts: list[str]) -> Path:
        from honed.data.download import cache_dir

        made = f"{self.made_by}\0" if self.made_by else ""  # (the Transformer's entries keep their key)
        digest = hashlib.sha256(f"{self.name}\0{self.max_pieces}\0{made}".encode())
        for text in texts:
            digest.update(text.encode("utf-8", "surrogatepass"))
            digest.update(b"\0")
        return cache_dir() / "sentence_vectors" / f"{digest.hexdigest()[:32]}.npy"


def length_batches(lengths: list[int]) -> Iterator[np.ndarray]:
    """Indices of texts of similar length (sorted by it), batched up to TOKENS_PER_BATCH padded pieces."""
    order = np.argsort(lengths, kind="stable")
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and (end + 1 - start) * lengths[order[end]] <= TOKENS_PER_BATCH:
            end += 1
        yield order[start:end]
        start = end


def padded_pieces(lengths: list[int]) -> int:
    """The word pieces encoding texts of these lengths computes, padding included."""
    return sum(len(rows) * max(1, max(lengths[r] for r in rows)) for rows in length_batches(lengths))


STATIC_SUFFIX = "-static"  # all-minilm-l6-v2-static: static vectors distilled from all-minilm-l6-v2
STATIC_WEIGHTS = "model.safetensors"  # what model2vec's save_pretrained writes: a whole static model is there
STATIC_DIMS = 256  # principal components kept of the encoder's 384 (Model2Vec's default)
STATIC_BATCH = 1024  # texts encoded per call: a batch's word pieces stay small
STATIC_TEXTS_PER_SECOND = 5000  # a guess for time estimates before the static vectors exist (then measured)


def is_static(name: str) -> bool:
    return name.endswith(STATIC_SUFFIX)


class StaticEncoder(SentenceEncoder):
    """A sentence encoder's static version (Model2Vec): every word piece of its vocabulary passed through the
    encoder once, alone, its output reduced to STATIC_DIMS principal components and weighted down the more
    frequent the piece (SIF); a text's vector is then the mean of its pieces' rows, a lookup instead of six
    Transformer layers. Distilled once per machine into the cache folder, read from there afterwards.
    Vectors, memory and disk caches as SentenceEncoder's; unit length."""

    made_by = f"model2vec, {STATIC_DIMS} components"

    def load(self) -> tuple:
        key = (self.name, self.max_pieces)
        if key not in _loaded:
            _loaded[key] = (None, static_model(self.name.removesuffix(STATIC_SUFFIX)))
        return _loaded[key]

    @property
    def dim(self) -> int:
        return int(self.load()[1].dim)

    def encode(self, texts: list[str]) -> np.ndarray:
        model = self.load()[1]
        vectors = model.encode(texts, max_length=self.max_pieces, batch_size=STATIC_BATCH, use_multiprocessing=False)
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def encoder_of(name: str, max_pieces: int = MAX_PIECES) -> SentenceEncoder:
    """The encoder data.encoder_features names: a Transformer's sentence vectors, run in 8 bits, or their static
    version."""
    kind = StaticEncoder if is_static(name) else Int8Encoder if is_int8(name) else SentenceEncoder
    return kind(name, max_pieces)


def static_model(base: str):
    """Model2Vec's StaticModel distilled from the encoder `base`: read from the cache folder, or distilled and
    written there first (once per machine: 14 s for all-MiniLM-L6-v2's 30,522 pieces on 2 cores)."""
    from honed.files import building

    folder = static_folder(base)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a folder is read where it lies; nothing is downloaded
    try:
        from model2vec import StaticModel
    except ImportError:
        raise UserError("data.encoder_features = *-static needs model2vec: pip install 'honed[transformer]'") from None
    for name in ("model2vec", "skeletoken"):  # "Saved model to ...", "Changing padding token ...": not honed's to say
        logging.getLogger(name).setLevel(logging.WARNING)
    if (folder / STATIC_WEIGHTS).is_file():
        try:
            return StaticModel.from_pretrained(str(folder))
        except Exception as e:  # a damaged cache entry (truncated, edited): distilled again below, whole
            log.warning(f"data: {folder} is damaged ({type(e).__name__}); distilling its static vectors again")
    started = time.perf_counter()
    log.info(f"data: distilling static word-piece vectors from {base} (once per machine)")
    with building(folder) as tmp:
        distilled(base).save_pretrained(str(tmp))
    log.info(f"data: static vectors of {base} distilled in {time.perf_counter() - started:.0f} s ({folder})")
    return StaticModel.from_pretrained(str(folder))


def static_folder(base: str) -> Path:
    """Where the static version of the encoder `base` is kept (the cache folder: once per machine)."""
    from honed.data.download import cache_dir

    return cache_dir() / "static_encoders" / f"{hashlib.sha256(base.encode()).hexdigest()[:16]}-{STATIC_DIMS}"


def distilled(base: str):
    """Model2Vec's distillation of the encoder `base` (its own vocabulary; float32 rows)."""
    import functools

    import transformers
    from model2vec.distill import distill_from_model, inference
    from tqdm import tqdm

    from honed.pretrained import encoder_folder

    folder = encoder_folder(base, key="data.encoder_features")
    transformers.logging.set_verbosity_error()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    model = transformers.AutoModel.from_pretrained(str(folder)).eval()
    inference.tqdm = functools.partial(tqdm, disable=True)  # its bar would cut through honed's log: the log says
    try:                                                     # when distilling starts and how long it took
        return distill_from_model(model, tokenizer, pca_dims=STATIC_DIMS, device="cpu", quantize_to="float32")
    finally:
        inference.tqdm = tqdm


INT8_SUFFIX = "-int8"
INT8_FILE = "encoder.onnx"
INT8_SPEEDUP = 2.5  # word pieces a second against the float encoder, for estimates before measuring (2.9x on
                    # 1,500 of cr's training texts on 2 cores: 3,082 -> 9,012)


def is_int8(name: str) -> bool:
    return name.endswith(INT8_SUFFIX)


class Int8Encoder(SentenceEncoder):
    """The same Transformer and pooling, run by ONNX Runtime with every linear layer's weights in 8 bits
    (dynamic quantization, a scale per output channel; activations quantized per batch as they come): 2.9x the
    word pieces a second of the float model on 2 CPU cores, vectors within cosine 0.98 of its own (mean 0.987
    on cr). Exported and quantized once per machine into the cache folder; afterwards only the tokenizer and
    ONNX Runtime are loaded, not transformers."""

    made_by = "onnxruntime, int8 weights per channel"

    def load(self) -> tuple:
        key = (self.name, self.max_pieces)
        if key not in _loaded:
            from tokenizers import Tokenizer

            from honed.pretrained import encoder_folder

            base = self.name.removesuffix(INT8_SUFFIX)
            tokenizer = Tokenizer.from_file(str(encoder_folder(base, key="data.encoder_features") / "tokenizer.json"))
            tokenizer.no_padding()
            tokenizer.enable_truncation(self.max_pieces)
            _loaded[key] = (tokenizer, Int8States(int8_model(base)))
        return _loaded[key]

    @property
    def dim(self) -> int:
        return self.load()[1].hidden_size

    @staticmethod
    def states(model, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return model(ids, mask)


class Int8States:
    """An ONNX Runtime session of a quantized encoder: (ids, mask) -> final states, on this process's threads."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.hidden_size = int(self.session.get_outputs()[0].shape[-1])

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        feeds = {"input_ids": ids.numpy(), "attention_mask": mask.long().numpy()}
        return torch.from_numpy(self.session.run(None, feeds)[0])


class FinalStates(torch.nn.Module):
    """A Hugging Face encoder as (ids, mask) -> final states: the form exported to ONNX."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def int8_model(base: str) -> Path:
    """The 8-bit ONNX file of the encoder `base`: read from the cache folder, or exported and quantized there
    first (once per machine)."""
    from honed.files import building

    folder = int8_folder(base)
    if (folder / INT8_FILE).is_file():
        return folder / INT8_FILE
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise UserError("data.encoder_features = *-int8 needs onnxruntime: pip install 'honed[transformer]'") \
            from None
    started = time.perf_counter()
    log.info(f"data: quantizing {base} to 8 bits for ONNX Runtime (once per machine)")
    _, model = SentenceEncoder(base).load()
    example = (torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long))
    dynamic = {"input_ids": {0: "texts", 1: "pieces"}, "attention_mask": {0: "texts", 1: "pieces"},
               "states": {0: "texts", 1: "pieces"}}
    # no_grad: the float model may have been loaded while encoding (inference mode), and tracing it with gradients
    # on would save its inference-mode weights for a backward pass
    with building(folder) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes: it is what exports BERT
        torch.onnx.export(FinalStates(model), example, str(tmp / "float.onnx"), dynamo=False, opset_version=17,
                          input_names=["input_ids", "attention_mask"], output_names=["states"], dynamic_axes=dynamic)
        root = logging.getLogger()  # the quantizer's advice to pre-process (a shape inference BERT does not need)
        level = root.level  # goes to the root logger: not the user's to read
        root.setLevel(logging.ERROR)
        try:
            quantize_dynamic(str(tmp / "float.onnx"), str(tmp / INT8_FILE), weight_type=QuantType.QInt8,
                             per_channel=True)
        finally:
            root.setLevel(level)
        (tmp / "float.onnx").unlink()
    log.info(f"data: {base} quantized in {time.perf_counter() - started:.0f} s ({folder})")
    return folder / INT8_FILE


def int8_folder(base: str) -> Path:
    """Where the 8-bit version of the encoder `base` is kept (the cache folder: once per machine)."""
    from honed.data.download import cache_dir

    return cache_dir() / "int8_encoders" / f"{hashlib.sha256(base.encode()).hexdigest()[:16]}"


def estimated_seconds(texts: list[str]) -> float:
    """About how long encoding `texts` takes on 2 CPU cores (word pieces estimated from words)."""
    pieces = sum(min(MAX_PIECES, PIECES_PER_WORD * (t.count(" ") + 1) + 2) for t in texts)
    return pieces / PIECES_PER_SECOND


LOAD_SECONDS = 5.0  # importing transformers and loading the encoder
SAMPLE_TEXTS = 128  # texts timed to measure the encoder's speed on this machine and these texts


DISTILL_SECONDS = 20.0  # distilling all-MiniLM-L6-v2's static vectors: 14 s on 2 CPU cores (once per machine)


def measured_seconds(name: str, texts: list[str]) -> float:
    """How long the vectors of `texts` would take here, measured rather than assumed: loading the encoder
    (timed), every text's word pieces (counted by its own tokenizer, cut at MAX_PIECES) at the rate measured on
    a seeded sample of the texts. A fixed rate misjudged long reviews on a busy machine by 3x. A static
    encoder not yet distilled on this machine counts DISTILL_SECONDS for it, without distilling."""
    if is_static(name) and not static_folder(name.removesuffix(STATIC_SUFFIX)).joinpath(STATIC_WEIGHTS).is_file():
        return DISTILL_SECONDS + len(texts) / STATIC_TEXTS_PER_SECOND
    encoder = encoder_of(name)
    if is_int8(name):  # quantized once per machine, before the clock: paid by now whatever is decided
        int8_model(name.removesuffix(INT8_SUFFIX))
    started = time.perf_counter()
    tokenizer, _ = encoder.load()
    loading = time.perf_counter() - started
    sample = np.random.default_rng(0).choice(len(texts), size=min(SAMPLE_TEXTS, len(texts)), replace=False)
    encoder.encode([texts[i] for i in sample[:16]])  # the first calls pay one-off costs (with 4 texts, an estimate
                                                     # made first in a process was 66 s for 43 s; after, 48)
    chosen, times = [texts[i] for i in sample], []
    for _ in range(2):  # the faster of two: a busy moment of the machine only ever slows one down
        began = time.perf_counter()
        encoder.encode(chosen)
        times.append(time.perf_counter() - began)
    spent = max(min(times), 1e-9)
    if tokenizer is None:  # a static encoder: a lookup per piece, its cost per text
        return loading + spent * len(texts) / len(sample)
    # per padded piece: a sample of random lengths pads more in its batches than the whole set, whose similar
    # lengths share a batch (per real piece, 59 s were estimated for 34 s of 10,662 two-sentence reviews)
    pieces = [len(e.ids) for e in tokenizer.encode_batch(texts)]
    rate = padded_pieces([pieces[i] for i in sample]) / spent
    return loading + padded_pieces(pieces) / rate


def unavailable(name: str) -> str | None:
    """Why the encoder `name` cannot be used here (its packages are not installed), or None."""
    import importlib.util

    from honed.pretrained import BUNDLED

    base = name.removesuffix(STATIC_SUFFIX).removesuffix(INT8_SUFFIX)
    needed = ["transformers", "tokenizers"] + ([BUNDLED[base]] if base in BUNDLED else []) + \
        (["model2vec", "skeletoken"] if is_static(name) else []) + (["onnx", "onnxruntime"] if is_int8(name) else [])
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    return f"pip install 'honed[transformer]' (missing: {', '.join(missing)})" if missing else None
