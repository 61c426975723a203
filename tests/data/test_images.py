"""data.source = images: folders, archives and lists of image files, every common format and mode, hostile files.
The images are made here (never read from ../shared)."""

import io
import struct
import tarfile
import zlib

import numpy as np
import pytest
import torch

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

import honed  # noqa: E402
from honed.data.build import load_raw  # noqa: E402
from honed.errors import UserError  # noqa: E402
from honed.recipe import load_recipe  # noqa: E402

COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220)}


def square(colour, size=(12, 9), seed=0) -> Image.Image:
    noise = np.random.default_rng(seed).integers(-20, 20, (size[1], size[0], 3))
    return Image.fromarray(np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8), "RGB")


def lay_out(root, per_class=12, test=True):
    for split in ("train", "test") if test else ("train",):
        for name, colour in COLOURS.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class if split == "train" else 4):
                square(colour, seed=i).save(folder / f"{i}.png")
    return root


def spec_of(path, **data):
    return load_recipe({"data": {"source": "images", "path": str(path), "size": 8} | data}).data


def png_header(width: int, height: int) -> bytes:
    """A PNG declaring width x height pixels with a few bytes of data: what a decompression bomb shows before
    its pixels are decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_a_folder_with_train_and_test_gives_both_splits_as_channels_first_pixels(tmp_path):
    raw = load_raw(spec_of(lay_out(tmp_path / "photos")))
    assert raw.image_shape == (3, 8, 8) and raw.train.x.shape == (24, 192) and raw.test.x.shape == (8, 192)
    assert sorted(set(raw.train.y)) == ["blue", "red"]
    assert raw.train.x.dtype == np.uint8  # 8 bits until the preprocessing scales them (a quarter of float32's memory)
    first = raw.train.x[list(raw.train.y).index("red")].reshape(3, 8, 8) / 255
    assert first[0].mean() > 0.7 and first[2].mean() < 0.25  # red channel first: the colours stay where they were


def test_modes_and_formats_become_eight_bit_grey_or_rgb(tmp_path):
    folder = tmp_path / "modes"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    Image.fromarray(np.full((6, 6), 65535, dtype=np.uint16)).save(folder / "a" / "sixteen.png")  # 16-bit grey
    square(COLOURS["red"]).convert("P").save(folder / "a" / "palette.gif")
    rgba = Image.new("RGBA", (5, 5), (255, 255, 255, 0))  # fully transparent white: black, not white
    rgba.save(folder / "b" / "clear.png")
    square(COLOURS["blue"]).save(folder / "b" / "photo.webp")
    square(COLOURS["blue"]).save(folder / "b" / "photo.bmp")
    square(COLOURS["blue"]).save(folder / "b" / "photo.jpg", quality=90)
    raw = load_raw(spec_of(folder, resize="stretch"))  # read in sorted order: a/palette.gif, a/sixteen.png, b/clear.png..
    assert raw.train.x.shape == (6, 192) and list(raw.train.y) == ["a", "a", "b", "b", "b", "b"]
    palette, sixteen, clear = raw.train.x[:3] / 255
    assert palette.reshape(3, 8, 8)[0].mean() > 0.7  # the palette's red, as RGB
    assert np.allclose(sixteen, 1.0)  # 65535 scaled to 255, not clipped to some other value
    assert np.allclose(clear, 0.0)
    grey = load_raw(spec_of(folder, channels="grey", resize="stretch"))
    assert grey.image_shape == (1, 8, 8) and grey.train.x.shape == (6, 64)


def test_an_archive_and_a_list_read_like_the_folder(tmp_path):
    root = lay_out(tmp_path / "photos")
    (root / "README.md").write_text("about these photos")  # beside train/ and test/, as public archives ship them
    with tarfile.open(tmp_path / "photos.tar.gz", "w:gz") as archive:
        archive.add(root, arcname="photos")
    folder, packed = load_raw(spec_of(root)), load_raw(spec_of(tmp_path / "photos.tar.gz"))
    order = np.lexsort(folder.train.x.T), np.lexsort(packed.train.x.T)
    np.testing.assert_array_equal(folder.train.x[order[0]], packed.train.x[order[1]])
    assert len(packed.test) == 8 and len(packed.train) == 24  # the canonical split, not a carved one
    rows = "path,label\n" + "".join(f"photos/train/{c}/{i}.png,{c}\n" for c in COLOURS for i in range(12))
    (tmp_path / "list.csv").write_text(rows)
    listed = load_raw(spec_of(tmp_path / "list.csv"))
    assert listed.train.x.shape == (24, 192) and listed.test is None


def test_hidden_and_non_image_files_are_skipped_and_bad_images_named(tmp_path, caplog):
    root = lay_out(tmp_path / "photos", test=False)
    (root / "train" / "red" / ".DS_Store").write_bytes(b"\0\0")
    (root / "train" / "red" / "notes.txt").write_text("hello")
    (root / "train" / ".hidden").mkdir()
    square(COLOURS["red"]).save(root / "train" / ".hidden" / "x.png")
    with caplog.at_level("INFO", logger="honed"):
        raw = load_raw(spec_of(root))
    assert len(raw.train) == 24 and "2 hidden files" in caplog.text and "1 files that are not images" in caplog.text
    buffer = io.BytesIO()
    square(COLOURS["red"], size=(64, 64)).save(buffer, "JPEG")
    (root / "train" / "red" / "cut.jpg").write_bytes(buffer.getvalue()[:300])  # truncated
    (root / "train" / "red" / "fake.jpg").write_text("not a picture")
    with pytest.raises(UserError, match="cut.jpg: cannot read this image .*skip_unreadable"):
        load_raw(spec_of(root))
    assert len(load_raw(spec_of(root, skip_unreadable=True)).train) == 24
    (root / "train" / "blue" / "bomb.png").write_bytes(png_header(20_000, 20_000))
    with pytest.raises(UserError, match="bomb.png.*more than data.max_pixels = 10,000,000"):
        load_raw(spec_of(root, max_pixels=10_000_000))
    with pytest.raises(UserError, match="bomb.png.*20,000 x 20,000 pixels, more than data.max_pixels"):
        load_raw(spec_of(root, max_pixels=300_000_000))  # within Pillow's own check (twice the bound): ours
    Image.new("RGB", (1, 1), (9, 9, 9)).save(root / "train" / "blue" / "tiny.png")  # 1 x 1 is an image too
    assert len(load_raw(spec_of(root, skip_unreadable=True)).train) == 25


def test_images_decoded_in_windows_over_processes_are_the_ones_decoded_here(tmp_path, monkeypatch):
    """Large folders decode over every core, a bounded window of files at a time: the same pixels in the same
    order, and an unreadable file named (or skipped) as when one process decodes everything."""
    from honed.data.sources import images

    root = lay_out(tmp_path / "photos", test=False)
    (root / "train" / "red" / "fake.jpg").write_text("not a picture")
    here = load_raw(spec_of(root, skip_unreadable=True))
    monkeypatch.setattr(images, "PARALLEL_MIN_FILES", 2)
    monkeypatch.setattr(images, "WINDOW_FILES", 5)  # 25 files: five windows, each split over the cores
    spread = load_raw(spec_of(root, skip_unreadable=True))
    np.testing.assert_array_equal(here.train.x, spread.train.x)
    assert list(here.train.y) == list(spread.train.y) and len(spread.train) == 24
    with pytest.raises(UserError, match="fake.jpg: cannot read this image"):
        load_raw(spec_of(root))


def test_one_class_or_no_image_is_one_line(tmp_path):
    (tmp_path / "one" / "cat").mkdir(parents=True)
    square(COLOURS["red"]).save(tmp_path / "one" / "cat" / "a.png")
    (tmp_path / "one" / "dog").mkdir()  # an empty class folder: no class
    with pytest.raises(UserError, match="one class"):
        load_raw(spec_of(tmp_path / "one"))
    (tmp_path / "none").mkdir()
    with pytest.raises(UserError, match="no image found"):
        load_raw(spec_of(tmp_path / "none"))


def test_image_classification_trains_on_a_folder(tmp_path):
    run = honed.train("image_classification", [f"data.path={lay_out(tmp_path / 'photos', per_class=24)}",
                                                "data.size=12", "train.epochs=6", "train.report=false"],
                      out=tmp_path / "run")
    assert run.summary["test"]["accuracy"] == 1.0  # red against blue
    assert honed.Run.open(run.path).shape.image_shape == (3, 12, 12)
    new = tmp_path / "new"
    new.mkdir()
    square(COLOURS["blue"], size=(40, 30), seed=99).save(new / "b.jpg")
    square(COLOURS["red"], size=(7, 7), seed=98).convert("P").save(new / "r.gif")
    (new / "notes.txt").write_text("skipped")
    folder = honed.predict(run.path, new)
    assert folder["path"].tolist() == [str(new / "b.jpg"), str(new / "r.gif")]
    assert folder["prediction"].tolist() == ["blue", "red"] and {"prob_blue", "prob_red"} <= set(folder.columns)
    one = honed.predict(run.path, new / "r.gif")
    assert one["prediction"].tolist() == ["red"]
    with tarfile.open(tmp_path / "new.tar", "w") as archive:
        archive.add(new / "b.jpg", arcname="b.jpg")
    assert honed.predict(run.path, tmp_path / "new.tar")["prediction"].tolist() == ["blue"]


def test_the_pages_confident_mistakes_show_the_images_as_they_were(tmp_path):
    """A wrong test image is shown on the run's page as its own pixels: the standardization undone, 8 bits."""
    import base64
    import json

    import torch

    from honed.api import pictures_of
    from honed.data.preprocess import TablePreprocessor
    from honed.report.evidence import save_test_evidence

    pixels = np.random.default_rng(0).integers(0, 256, (6, 3, 4, 5)).astype(np.uint8)  # 6 images, RGB, 4 x 5
    x = pixels.reshape(6, -1).astype(np.float32) / 255
    pre = TablePreprocessor("multiclass", [f"p{i}" for i in range(60)], image_shape=(3, 4, 5))
    pre.fit_inputs(x)
    inputs = pre.inputs(x)
    assert not np.allclose(inputs.numpy(), x)  # standardized, as the model reads them
    scores = torch.tensor([[5.0, 0.0]] * 6)  # every image called class 0 with confidence; rows 2 and 4 are class 1
    save_test_evidence(tmp_path, scores, torch.tensor([0, 0, 1, 0, 1, 0]), "multiclass",
                       pictures=pictures_of(pre, inputs))
    mistakes = json.loads((tmp_path / "mistakes.json").read_text())
    assert [m["row"] for m in mistakes] == [2, 4]
    shown = Image.open(io.BytesIO(base64.b64decode(mistakes[0]["image"].removeprefix("data:image/png;base64,"))))
    np.testing.assert_array_equal(np.asarray(shown), pixels[2].transpose(1, 2, 0))


def test_the_server_takes_image_files_and_answers_as_predict_does(tmp_path):
    import base64

    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from honed.export import load_predictor
    from honed.serve import create_app

    run = honed.train("image_classification", [f"data.path={lay_out(tmp_path / 'photos', per_class=16)}",
                                                "data.size=12", "train.epochs=4", "train.report=false"],
                      out=tmp_path / "run")
    files = []
    for name, colour, size in (("b.jpg", "blue", (40, 30)), ("r.png", "red", (9, 9))):
        square(COLOURS[colour], size=size, seed=7).save(tmp_path / name)
        files.append(base64.b64encode((tmp_path / name).read_bytes()).decode())
    client = TestClient(create_app(load_predictor(run.path)))
    served = client.post("/predict", json={"images": files}).json()["predictions"]
    local = honed.predict(run.path, tmp_path / "b.jpg").iloc[0], honed.predict(run.path, tmp_path / "r.png").iloc[0]
    assert [p["prediction"] for p in served] == [row["prediction"] for row in local] == ["blue", "red"]
    assert served[0]["probabilities"]["blue"] == pytest.approx(local[0]["prob_blue"], abs=1e-5)
    batch = client.post("/batch_predict", json={"images": files, "ids": ["b", "r"]}).json()
    assert batch["ids"] == ["b", "r"] and [p["prediction"] for p in batch["predictions"]] == ["blue", "red"]
    for body, words in (({"images": ["%%%"]}, "images[0]: not base64"),
                        ({"images": [base64.b64encode(b"not an image").decode()]}, "images[0]: cannot read"),
                        ({"images": files, "rows": [[0.0]]}, "images alone")):
        answer = client.post("/predict", json=body)
        assert answer.status_code == 422 and words in answer.json()["error"], answer.text
    schema = client.get("/openapi.json").json()["components"]["schemas"]["PredictRequest"]
    assert "images" in schema["properties"]
    # the files themselves as a form (multipart/form-data: curl -F files=@b.jpg -F files=@r.png)
    raw = [("files", (name, (tmp_path / name).read_bytes())) for name in ("b.jpg", "r.png")]
    uploaded = client.post("/predict/files", files=raw).json()
    assert uploaded["files"] == ["b.jpg", "r.png"] and uploaded["predictions"] == served
    answer = client.post("/predict/files", files=[raw[0], ("files", ("notes.jpg", b"not an image"))])
    assert answer.status_code == 422 and "files[1] (notes.jpg): cannot read" in answer.json()["error"], answer.text
    assert "BytesIO" not in answer.json()["error"] and "JPEG, PNG" in answer.json()["error"]  # what it can read
    assert client.post("/predict/files", data={"other": "x"}).status_code == 422  # no files field
    import honed.serve.app as serving

    serving_without_forms = pytest.MonkeyPatch.context()
    with serving_without_forms as patch:  # honed installed without its serve extra's form parser
        patch.setattr(serving, "accepts_uploads", lambda: False)
        refused = TestClient(create_app(load_predictor(run.path))).post("/predict/files", files=raw)
    assert refused.status_code == 501 and "pip install 'honed[serve]'" in refused.json()["error"]
    hostile = client.post("/predict/files", files=[("files", ("a\nb" * 100 + ".jpg", b"GIF89a"))]).json()["error"]
    assert "\n" not in hostile and "files[0] (a" in hostile and "...): cannot read" in hostile and len(hostile) < 300
    # the ONNX bundle decodes image files as training did: served from the bundle alone, and by its own predict.py
    bundle = TestClient(create_app(load_predictor(run.path, backend="onnx")))
    from_bundle = bundle.post("/predict", json={"images": files}).json()["predictions"]
    assert [p["probabilities"]["blue"] for p in from_bundle] == pytest.approx(
        [p["probabilities"]["blue"] for p in served], abs=1e-5)
    import json
    import subprocess
    import sys

    info = json.loads((run.path / "onnx" / "bundle.json").read_text())
    assert info["image"] | {"pixels": ""} == {"size": 12, "resize": "crop", "max_pixels": 50_000_000, "channels": 3,
                                              "pixels": ""}
    block_honed = ("import sys, runpy; sys.modules['honed'] = None; sys.argv = ['predict.py', *sys.argv[1:]]; "
                   "runpy.run_path('predict.py', run_name='__main__')")
    (tmp_path / "dir").mkdir()
    (tmp_path / "b.jpg").rename(tmp_path / "dir" / "b.jpg")
    done = subprocess.run([sys.executable, "-c", block_honed, "--images", str(tmp_path / "dir"), str(tmp_path / "r.png")],
                          cwd=run.path / "onnx", capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["input"] for line in lines] == [str(tmp_path / "dir" / "b.jpg"), str(tmp_path / "r.png")]
    assert [line["probabilities"]["blue"] for line in lines] == pytest.approx([local[0]["prob_blue"],
                                                                               local[1]["prob_blue"]], abs=1e-5)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    bad = subprocess.run([sys.executable, "-c", block_honed, "--images", str(tmp_path / "bad.png")],
                         cwd=run.path / "onnx", capture_output=True, text=True)
    assert bad.returncode == 2 and "bad.png: cannot read this image" in bad.stderr and "Traceback" not in bad.stderr


def test_eight_bit_rows_are_scaled_exactly_as_the_float_rows_clients_send():
    """Training keeps pixels in 8 bits (pixels.stacked8); predict, serve and bundles send pixels.stacked's
    float32 value / 255: the preprocessing must give the model the same numbers from either."""
    from honed.data.pixels import stacked, stacked8
    from honed.data.preprocess import TablePreprocessor

    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 256, (4, 4, 3), dtype=np.uint8) for _ in range(20)]
    eight, floats = stacked8(pixels, grey=False), stacked(pixels, grey=False)
    assert eight.dtype == np.uint8 and floats.dtype == np.float32
    from_eight = TablePreprocessor("multiclass", [str(i) for i in range(48)], image_shape=(3, 4, 4))
    from_floats = TablePreprocessor("multiclass", [str(i) for i in range(48)], image_shape=(3, 4, 4))
    from_eight.fit_inputs(eight)
    from_floats.fit_inputs(floats)
    np.testing.assert_allclose(from_eight.mean, from_floats.mean, rtol=1e-6)
    np.testing.assert_allclose(from_eight.std, from_floats.std, rtol=1e-6)
    assert torch.equal(from_eight.inputs(eight), from_eight.inputs(floats))
    profile = from_eight.profile_inputs(eight)["features"][0]
    assert 0.0 <= profile["min"] <= profile["mean"] <= profile["max"] <= 1.0  # in the float rows' units
