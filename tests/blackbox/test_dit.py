"""Black-box tests of the dit runner (issue 5): real image generation on the
cpu device through the whole path, the deep probe that replays the warmed
forward, and the safetensors weights loader.

Every server runs MODEL_RUNNER=dit with the tiny preset and MODEL_SERVICE=image,
with harness.py's test-sized canary settings. Images are small (64 to 128
pixels a side, 4 to 8 steps), a fraction of a second each on 2 shared cores.
PNG and JPEG sizes are read from the IHDR chunk and the SOF marker by hand.
Weights files come from build/mediad-mkweights (next to the mediad binary)."""
import base64
import json
import os
import struct
import subprocess
import threading
import time

import pytest

from harness import BIN, IMG, clear_faults, inject, jpeg_size, png_size

MKWEIGHTS = os.path.join(os.path.dirname(BIN), "mediad-mkweights")
DIT = {"MODEL_RUNNER": "dit", "DIT_PRESET": "tiny", "MODEL_SERVICE": "image"}


def dit_env(**kw):
    env = dict(DIT)
    env.update({k: str(v) for k, v in kw.items()})
    return env


@pytest.fixture
def dit(server_factory):
    return server_factory(dit_env())


# --- image helpers ------------------------------------------------------------

def generate(s, **body):
    body.setdefault("prompt", "a lighthouse on a cliff")
    body.setdefault("num_inference_steps", 4)
    r = s.post(IMG, body, timeout=60)
    assert r.status == 200, (r.status, r.body[:500])
    out = r.json()
    assert len(out["data"]) == len(out["images"])
    for img, d in zip(out["images"], out["data"]):
        assert d["b64_json"] == img
    assert isinstance(out["seed"], int) and out["generation_time"] >= 0
    assert isinstance(out["created"], int)
    return out


def images(out):
    return [base64.b64decode(i, validate=True) for i in out["images"]]


# --- generation ---------------------------------------------------------------

@pytest.mark.parametrize("fmt,size_of", [("PNG", png_size), ("JPEG", jpeg_size)])
def test_images_decode_to_the_requested_size(dit, fmt, size_of):
    for w, h in ((64, 64), (128, 64), (64, 112)):
        out = generate(dit, width=w, height=h, seed=5, image_return_format=fmt)
        (img,) = images(out)
        assert size_of(img) == (w, h), (fmt, w, h)


def test_number_of_images_and_jpeg_quality(dit):
    out = generate(dit, width=64, height=64, seed=9, number_of_images=3)
    imgs = images(out)
    assert len(imgs) == 3 and out["seed"] == 9
    assert len(set(imgs)) == 3, "the images of one request use seed, seed+1, seed+2"
    assert all(jpeg_size(i) == (64, 64) for i in imgs)
    lo = images(generate(dit, width=64, height=64, seed=9, image_quality=50))[0]
    hi = images(generate(dit, width=64, height=64, seed=9, image_quality=100))[0]
    assert len(lo) < len(hi)
    # image 1 of a 3-image request is the image of seed 10
    one = images(generate(dit, width=64, height=64, seed=10))[0]
    assert one == imgs[1]


def test_same_seed_identical_bytes_and_parameters_change_the_image(dit):
    base = {"width": 64, "height": 64, "seed": 1234, "image_return_format": "PNG",
            "prompt": "a red fox in the snow", "negative_prompt": "blurry",
            "guidance_scale": 5.0}
    a = images(generate(dit, **base))[0]
    assert images(generate(dit, **base))[0] == a
    for key, value in (("seed", 1235), ("prompt", "a blue whale"), ("negative_prompt", ""),
                       ("guidance_scale", 9.0), ("num_inference_steps", 5)):
        other = dict(base, **{key: value})
        assert images(generate(dit, **other))[0] != a, "changing %s changed nothing" % key
    # no seed: a random one is used, returned, and reproduces the image
    out = generate(dit, **{k: v for k, v in base.items() if k != "seed"})
    again = generate(dit, **dict(base, seed=out["seed"]))
    assert again["images"] == out["images"]


def test_thread_count_and_batching_do_not_change_the_bytes(server_factory):
    body = {"width": 64, "height": 80, "seed": 77, "image_return_format": "PNG",
            "prompt": "a windmill", "num_inference_steps": 5}
    got = []
    for threads in (1, 3):
        s = server_factory(dit_env(WORKER_THREADS=threads, MAX_BATCH_SIZE=4,
                                   MAX_BATCH_DELAY_TIME_MS=200))
        got.append(images(generate(s, **body))[0])
        # the same request batched with others of other sizes
        results = {}

        def go(name, b):
            results[name] = s.post(IMG, b, timeout=60)
        others = [dict(body, width=128, height=64, seed=1, prompt="x"),
                  dict(body, width=96, height=96, seed=2, num_inference_steps=7)]
        ts = [threading.Thread(target=go, args=(i, b)) for i, b in enumerate(others)]
        ts.append(threading.Thread(target=go, args=("me", body)))
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert all(r.status == 200 for r in results.values())
        got.append(images(results["me"].json())[0])
    assert all(g == got[0] for g in got), "thread count or batching changed the image"


@pytest.mark.parametrize("field,value", [
    ("num_inference_steps", 3), ("num_inference_steps", 51), ("number_of_images", 5),
    ("image_quality", 49), ("image_quality", 101), ("guidance_scale", 0.5),
    ("guidance_scale", 21), ("width", 72), ("width", 2048), ("height", 32),
    ("image_return_format", "GIF"), ("prompt", ""), ("seed", -1),
])
def test_out_of_range_fields_are_422(dit, field, value):
    body = {"prompt": "ok", "width": 64, "height": 64}
    body[field] = value
    r = dit.post(IMG, body)
    assert r.status == 422, (field, value, r.status, r.body)
    assert field in r.body.decode(), r.body


def test_models_says_synthetic_weights(dit):
    m = dit.get("/v1/models").json()
    assert m["data"][0]["id"] == "mediad-dit-tiny"
    assert m["data"][0]["runner"] == "dit"
    assert m["data"][0]["synthetic_weights"] is True
    lines = [l for l in dit.log_lines(level="warn") if "synthetic weights" in l.get("msg", "")]
    assert lines, "the log must say plainly that the weights are synthetic"


# --- deep probe -------------------------------------------------------------------

def deep_env(**kw):
    return dit_env(ENABLE_FAULT_INJECTION="true", CANARY_ON_DEAD="gate",
                   CANARY_DEEP_EVERY_N=1, **kw)


def test_deep_probe_passes_then_catches_corrupt_deep(server_factory):
    s = server_factory(deep_env())
    # healthy deep probes first: the replay matches the golden digest
    s.wait_for(lambda: s.liveness()["worker_info"]["0"]["last_probe_ok"], 10,
               what="a successful probe")
    time.sleep(2.5)
    w = s.liveness()["worker_info"]["0"]
    assert w["canary_state"] in ("healthy", "probing") and w["misses"]["deep"] == 0, w
    inject(s, "0", "corrupt_deep")
    s.wait_for(lambda: s.get("/health").status == 503, 15, what="/health 503")
    r = s.get("/tt-liveness")
    assert r.status == 503
    body = r.json()
    assert body["canary_alive"] is False and body["canary_state"] == "dead"
    w = body["worker_info"]["0"]
    assert w["canary_state"] == "dead" and w["misses"]["deep"] >= 2, w
    assert "digest" in w.get("canary_reason", ""), w
    assert "deep" in s.get("/health").json()["error"]
    flips = [l for l in s.log_lines(level="warn") if "corrupt_deep flips" in l.get("msg", "")]
    assert flips, "the runner logs the weight it flipped"
    # the flip is undone after each replay: clearing the fault brings it back
    clear_faults(s)
    s.wait_for(lambda: s.get("/health").status == 200, 15, what="recovery after the fault")


def test_corrupt_worker_is_gated_while_a_healthy_second_worker_serves(server_factory):
    s = server_factory(deep_env(DEVICE_IDS="(0),(1)", WORKER_THREADS=1))
    # both workers must have taken their golden digest before the fault: a
    # corrupt_deep active during warmup would corrupt the golden replay too
    s.wait_for(lambda: all(w["is_ready"] for w in s.liveness()["worker_info"].values()), 15,
               what="both workers ready")
    inject(s, "0", "corrupt_deep")
    s.wait_for(lambda: s.liveness()["worker_info"]["0"]["canary_state"] == "dead", 15,
               what="worker 0 dead")
    time.sleep(0.5)  # let the dead edge settle: worker 0 is out of rotation
    live = s.liveness()
    assert live["worker_info"]["0"]["canary_state"] == "dead", live
    assert live["worker_info"]["1"]["canary_state"] in ("healthy", "probing", "starting")
    assert "digest" in live["worker_info"]["0"].get("canary_reason", "")
    for i in range(4):
        generate(s, width=64, height=64, seed=i)  # served by worker 1
    assert s.liveness()["worker_info"]["1"]["misses"]["deep"] == 0


# --- weights files ------------------------------------------------------------------

def mkweights(tmp_path, name, *args):
    if not os.path.exists(MKWEIGHTS):
        pytest.fail("%s is missing: run make first" % MKWEIGHTS)
    path = str(tmp_path / name)
    subprocess.run([MKWEIGHTS, "--preset", "tiny", "-o", path, *args], check=True,
                   stdout=subprocess.DEVNULL)
    return path


def test_weights_file_loads_and_matches_the_synthetic_model(server_factory, tmp_path):
    path = mkweights(tmp_path, "tiny.safetensors")
    body = {"width": 64, "height": 64, "seed": 3, "image_return_format": "PNG"}
    loaded = server_factory(dit_env(MODEL_WEIGHTS_PATH=path))
    m = loaded.get("/v1/models").json()["data"][0]
    assert m["synthetic_weights"] is False
    assert [l for l in loaded.log_lines(level="info") if path in l.get("msg", "")]
    a = images(generate(loaded, **body))[0]
    synthetic = server_factory(dit_env())
    # mkweights writes the synthetic weights' seed by default: the same model
    assert images(generate(synthetic, **body))[0] == a
    # a half-precision file loads too, and is a slightly different model
    half = server_factory(dit_env(MODEL_WEIGHTS_PATH=mkweights(tmp_path, "h.safetensors",
                                                               "--dtype", "f16")))
    b = images(generate(half, **body))[0]
    assert png_size(b) == (64, 64)


def warmup_error(s):
    def find():
        for l in s.log_lines(level="error"):
            if "warmup failed" in l.get("msg", ""):
                return l["msg"]
        return None
    return s.wait_for(find, 15, what="a warmup error in the log")


def first_cut_tensor(path, keep):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    avail = keep - 8 - n
    cut = [(v["data_offsets"][0], k) for k, v in header.items()
           if k != "__metadata__" and v["data_offsets"][1] > avail]
    return min(cut)[1]


def test_truncated_weights_file_stops_warmup_naming_the_tensor(server_factory, tmp_path):
    path = mkweights(tmp_path, "cut.safetensors")
    size = os.path.getsize(path)
    keep = size - 700
    expected = first_cut_tensor(path, keep)
    with open(path, "r+b") as f:
        f.truncate(keep)
    s = server_factory(dit_env(MODEL_WEIGHTS_PATH=path), wait=False)
    msg = warmup_error(s)
    assert expected in msg and "truncated" in msg, msg
    assert s.get("/health").status == 503
    assert s.post(IMG, {"prompt": "x", "width": 64, "height": 64}).status == 503


def test_missing_tensor_stops_warmup_naming_it(server_factory, tmp_path):
    name = "blocks.1.attn.qkv.weight"
    path = mkweights(tmp_path, "missing.safetensors", "--omit", name)
    s = server_factory(dit_env(MODEL_WEIGHTS_PATH=path), wait=False)
    msg = warmup_error(s)
    assert ("tensor %s is missing" % name) in msg, msg
    assert s.get("/health").status == 503


def test_weights_of_another_preset_are_refused(server_factory, tmp_path):
    path = mkweights(tmp_path, "tiny.safetensors")
    s = server_factory(dit_env(MODEL_WEIGHTS_PATH=path, DIT_PRESET="small"), wait=False)
    msg = warmup_error(s)
    assert "x_embedder.proj.weight" in msg and "preset tiny" in msg, msg


def test_missing_weights_file_stops_warmup(server_factory, tmp_path):
    path = str(tmp_path / "nope.safetensors")
    s = server_factory(dit_env(MODEL_WEIGHTS_PATH=path), wait=False)
    msg = warmup_error(s)
    assert path in msg, msg
