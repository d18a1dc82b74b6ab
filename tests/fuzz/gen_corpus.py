#!/usr/bin/python3
"""Writes the seed corpora of the fuzz drivers in tests/fuzz/. The files are
committed, so run it (/usr/bin/python3 tests/fuzz/gen_corpus.py) only to
change the seeds. Not written here: corpus/ipc (by hand) and the encoded
audio of corpus/audio_in (aiff, au_ulaw, flac*, mp3, ogg_vorbis, opus,
wav*: a few frames of a sine written with libsndfile's sf_writef_short, each
prefixed with the driver's option byte 0x00; the truncated ones cut short).

Each driver's input layout is described at the top of its .c file. Some
seeds are findings of issue 8 kept as regressions (named in the comments)."""
import base64
import io
import json
import os
import struct
import wave

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(name, fname, data):
    d = os.path.join(ROOT, name)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, fname), "wb") as f:
        f.write(data)


# --- router: method byte, services byte, allow size, allow bits, path \0 method name
def router():
    seeds = [
        ("health", 0, 0x3f, "/health", "GET"),
        ("health_post", 2, 0x3f, "/health", "POST"),
        ("images", 2, 0x01, "/v1/images/generations", "POST"),
        ("legacy_image", 2, 0x01, "/image/generations", "POST"),
        ("video_id", 0, 0x08, "/v1/videos/generations/0123abcd", "GET"),
        ("video_dl", 0, 0x08, "/video/generations/x/download", "HEAD"),
        ("video_cancel", 2, 0x08, "/v1/videos/generations/id/cancel", "POST"),
        ("jobs_metrics", 0, 0x20, "/v1/jobs/j-1/metrics", "GET"),
        ("jobs_405", 3, 0x20, "/v1/jobs", "DELETE"),
        ("faults", 3, 0x00, "/debug/faults", "DELETE"),
        ("traversal", 0, 0x3f, "/v1/videos/generations/../../etc/passwd", "GET"),
        ("empty_id", 0, 0x3f, "/v1/jobs//cancel", "POST"),
        ("long_id", 0, 0x3f, "/v1/jobs/" + "a" * 79, "GET"),
        ("long_id80", 0, 0x3f, "/v1/jobs/" + "a" * 80, "GET"),
        ("unknown", 7, 0x3f, "/v2/health/live", "BREW"),
    ]
    for fname, m, svc, path, meth in seeds:
        put("router", fname, bytes([m, svc, 95, 0x7f]) + path.encode() + b"\0" + meth.encode())


# --- validate: flags byte (bit 0 JSON_ALLOW_NUL, bits 1.. limits), JSON text
def validate():
    wav = io.BytesIO()
    with wave.open(wav, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\1" * 16)
    b64 = base64.b64encode(wav.getvalue()).decode()
    seeds = {
        "image": {"prompt": "a lighthouse at dusk", "negative_prompt": "fog",
                  "num_inference_steps": 20, "seed": 7, "number_of_images": 2,
                  "image_return_format": "png", "image_quality": 90, "guidance_scale": 5.5,
                  "width": 512, "height": 256},
        "image_openai": {"prompt": "x", "n": 1, "size": "64x64", "response_format": "b64_json",
                         "seed": "18446744073709551615"},
        "image_nulls": {"prompt": "x", "seed": None, "width": 64.0, "user": "extra"},
        "transcribe": {"file": b64, "response_format": "verbose_json", "stream": False,
                       "language": "en", "prompt": "", "temperature": 0.2},
        "speech": {"input": "hello", "text": "hello", "voice": "alice", "response_format": "FLAC",
                   "speed": 1.5, "stream": True},
        "video": {"prompt": "waves", "num_frames": 8, "fps": 12, "width": 256, "height": 256,
                  "seed": 1},
        "chat": {"model": "m", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"},
                                         {"type": "text", "text": "b"}]},
            {"role": "assistant"}],
            "max_tokens": 16, "temperature": 0, "top_p": 0.5, "stop": ["\n", "END"],
            "stream": True, "stream_options": {"include_usage": True}, "n": 1},
        "completion": {"prompt": ["one", "two"], "max_completion_tokens": 8, "stop": "x",
                       "seed": 3},
        "tokenize": {"prompt": "hello world", "model": "m"},
        "tokenize_msgs": {"messages": [{"role": "user", "content": "hi"}]},
        "detokenize": {"tokens": [0, 1, 2147483647, 5.0]},
        "embed": {"input": ["a", "b"], "model": "e", "encoding_format": "base64"},
        "train": {"model": "m", "dataset": {"rows": [1, 2]},
                  "hyperparameters": {"steps": 10, "learning_rate": 0.001, "batch_size": 2,
                                      "lora_rank": 4}, "suffix": "s"},
        "train_str": {"model": "m", "dataset": "ds", "hyperparameters": None},
    }
    for fname, body in seeds.items():
        put("validate", fname, b"\0" + json.dumps(body).encode())
    put("validate", "voices", b"\x02" + json.dumps({"input": "x", "voice": "BOB"}).encode())
    put("validate", "tight", b"\x04" + json.dumps({"prompt": "p", "size": "96X32"}).encode())
    put("validate", "nul", b"\x01" + b'{"prompt":"a\\u0000b","input":"\\u0000"}')
    put("validate", "utf8", b"\x00" + '{"prompt":"\u00e9\u65e5\U0001f600","input":"\u00e9"}'
        .encode())
    put("validate", "big_numbers", b"\x00" + b'{"prompt":"x","seed":1e400,"width":-1,'
        b'"num_inference_steps":1180591620717411303424,"guidance_scale":1e-400}')
    put("validate", "not_object", b"\x00" + b'[{"prompt":"x"}]')
    # finding: a NUL inside a training dataset object passed validation
    put("validate", "dataset_nul", b"\x01" + b'{"model":"m","dataset":{"rows":["a\\u0000b"]}}')


# --- base64: ceiling byte, then the text
def base64_seeds():
    seeds = {"hello": b"\x00aGVsbG8gd29ybGQ=", "nopad": b"\x00aGVsbG8gd29ybGQ",
             "two_pad": b"\x08QQ==", "bits": b"\x00QR==", "tiny_ceiling": b"\x02AAAA",
             "empty": b"\x00", "junk": b"\x00ab$d", "onechar": b"\x00A", "threepad": b"\x00A===",
             "ws": b"\x00QUJD\nREVG",
             "wav": b"\x07UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA=",
             # finding: libsodium read bytes >= 0x80 as '/'
             "high_byte": b"\x00QQQ\xff"}
    for fname, data in seeds.items():
        put("base64", fname, data)


# --- audio_in: option byte, then the file
def audio_in():
    # finding: NaN samples of a float WAV reached an int16 conversion (UB)
    samples = [0.5, float("nan"), float("inf"), float("-inf"), 1e10, -0.25] * 50
    data = b"".join(struct.pack("<f", x) for x in samples)
    fmt = struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32)
    wav = (b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE" + b"fmt " +
           struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data)
    put("audio_in", "float_nan", b"\x00" + wav)


# --- safetensors: the whole file
def safetensors():
    def st(header, data, pad=True):
        h = json.dumps(header, separators=(",", ":")).encode()
        if pad:
            h += b" " * (-len(h) % 8)
        return struct.pack("<Q", len(h)) + h + data

    f32 = struct.pack("<4f", 1.0, -2.5, float("inf"), 0.0)
    put("safetensors", "f32", st({"w": {"dtype": "F32", "shape": [2, 2],
                                        "data_offsets": [0, 16]},
                                  "__metadata__": {"preset": "tiny", "format": "pt"}}, f32))
    put("safetensors", "f16_bf16", st({
        "a": {"dtype": "F16", "shape": [3], "data_offsets": [0, 6]},
        "b": {"dtype": "BF16", "shape": [1, 3], "data_offsets": [6, 12]},
        "c": {"dtype": "I32", "shape": [1], "data_offsets": [12, 16]}},
        struct.pack("<3H", 0x3c00, 0x7c00, 0x7e00) + struct.pack("<3H", 0x3f80, 0xff80, 0x0001)
        + b"\0\0\0\0"))
    put("safetensors", "scalar_empty", st({"s": {"dtype": "F32", "shape": [],
                                                 "data_offsets": [0, 4]},
                                           "z": {"dtype": "F32", "shape": [0, 5],
                                                 "data_offsets": [4, 4]}}, b"\0\0\x80\x3f"))
    put("safetensors", "truncated", st({"w": {"dtype": "F32", "shape": [8],
                                              "data_offsets": [0, 32]}}, f32))
    put("safetensors", "eight_dims", st({"w": {"dtype": "F32", "shape": [1] * 8,
                                               "data_offsets": [0, 4]}}, f32[:4]))
    put("safetensors", "huge_shape", st({"w": {"dtype": "F32",
                                               "shape": [4611686018427387904],
                                               "data_offsets": [0, 0]}}, b""))
    put("safetensors", "bad_len", struct.pack("<Q", 1 << 40) + b"{}")
    put("safetensors", "not_json", struct.pack("<Q", 4) + b"GGUF")
    put("safetensors", "unpadded", st({"x": {"dtype": "BF16", "shape": [2],
                                             "data_offsets": [0, 4]}}, b"\1\2\3\4", pad=False))


# --- config: .env text, then NUL-separated argv entries (leading 0xff: no .env file)
def config():
    seeds = {
        "basic": "# mediad settings\nSERVICE_PORT=9000\nMODEL_SERVICE=image,tts\n"
                 "API_KEY='s3cr3t # not a comment'\n",
        "export_quotes": "export LOG_LEVEL=\"debug\"\n  CANARY_TICK_SECONDS = 0.25 # tick\n"
                         "RESET_DEVICE_COMMAND=\"echo \\\"x\\\" \\n y\"\r\n",
        "devices": "DEVICE_IDS=(0),(1),(2,3)\nMIN_READY_WORKERS=2\nCANARY_ON_DEAD=gate\n",
        "bools": "NO_AUTH=On\nCANARY_ENABLED=0\nENABLE_FAULT_INJECTION=YES\n"
                 "CANARY_GATE_READINESS=false\n",
        "bad_line": "SERVICE_PORT 9000\n",
        "bad_quote": "API_KEY=\"open\n",
        "bounds": "MAX_REQUEST_BODY_BYTES=4294967296\nMAX_CONNECTIONS=16\n"
                  "REQUEST_PROCESSING_TIMEOUT_SECONDS=1e-1\n",
        "unknown_key": "NOT_A_SETTING=1\n_X=2\n",
    }
    for fname, text in seeds.items():
        put("config", fname, text)
    # finding: a string setting that is not UTF-8 made the JSON dump (and the
    # worker's ready message) invalid
    put("config", "latin1_value", b"MODEL_NAME=caf\xe9\n")
    put("config", "argv", "SERVICE_PORT=1\n\0--port\0" "8080\0--no-auth\0--log-level=warn\0"
        "--worker-id\0" "3\0--canary-enabled\0off")
    put("config", "argv_only", b"\xff\0--device-ids\0(0),(1)\0--min-ready-workers=2\0--host\0::1")
    put("config", "argv_bad", "\0--port\0" "70000")
    put("config", "argv_missing", "\0--service")


# --- multipart: 4 bytes of split seed, Content-Type, '\n', body
def multipart():
    fixtures = os.path.join(os.path.dirname(ROOT), "..", "fixtures")
    for name in ("openai-7.60.0-transcription.http", "openai-7.60.0-translation.http"):
        with open(os.path.join(fixtures, name), "rb") as f:
            raw = f.read()
        head, body = raw.split(b"\r\n\r\n", 1)
        ctype = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n")
                 if l.lower().startswith(b"content-type:")][0]
        put("multipart", name.replace(".http", ""), b"\x01\x02\x03\x04" + ctype + b"\n" + body)
    b = b"fuzzb"
    ct = b"multipart/form-data; boundary=" + b + b"\n"
    def part(name, value, filename=None):
        disp = b'form-data; name="' + name + b'"'
        if filename:
            disp += b'; filename="' + filename + b'"'
        return b"--" + b + b"\r\nContent-Disposition: " + disp + b"\r\n\r\n" + value + b"\r\n"
    end = b"--" + b + b"--\r\n"
    wav = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(40))
    seeds = {
        "fields_and_file": part(b"model", b"m") + part(b"file", wav, b"a.wav") + end,
        "repeated_field": part(b"language", b"en") + part(b"language", b"fr") + end,
        "repeated_file": part(b"file", wav, b"a") + part(b"file", wav, b"b") + end,
        "nameless": b"--" + b + b"\r\nContent-Type: text/plain\r\n\r\nx\r\n" + end,
        "preamble_epilogue": b"junk\r\n" + part(b"a", b"\r\n--fuzz") + end + b"tail",
        "truncated": part(b"file", wav, b"a.wav")[:-7],
        "utf8": part(b"prompt", "caf\u00e9 \u2603".encode()) + end,
        "quoted": b"--" + b + b'  \r\nContent-Disposition: form-data; name="a\\"b"; '
                  b"filename=x\r\n\r\nv\r\n" + end,
    }
    for name, body in seeds.items():
        put("multipart", name, b"\x07\x00\x00\x00" + ct + body)


# --- gguf: a whole file (corpus/gguf/regress_newline_in_name is a fuzz finding kept by hand:
# a tensor name with a newline once made a two-line refusal)
def gguf():
    def s(x):
        x = x.encode() if isinstance(x, str) else x
        return struct.pack("<Q", len(x)) + x

    def kv(key, vtype, payload):
        return s(key) + struct.pack("<I", vtype) + payload

    def tensor(name, dims, ttype, off):
        return (s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
                + struct.pack("<IQ", ttype, off))

    def build(version, kvs, tensors, data, align=32):
        head = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)) + b"".join(kvs)
        head += b"".join(tensors)
        head += b"\0" * ((-len(head)) % align)
        return head + data

    toks = [b"<unk>", b"<s>", b"</s>"] + [b"<0x%02X>" % i for i in range(4)] + ["\u2581the".encode()]
    kvs = [kv("general.architecture", 8, s("llama")), kv("llama.context_length", 4, struct.pack("<I", 128)),
           kv("llama.embedding_length", 4, struct.pack("<I", 32)),
           kv("llama.attention.layer_norm_rms_epsilon", 6, struct.pack("<f", 1e-5)),
           kv("tokenizer.ggml.add_bos_token", 7, b"\x01"), kv("t.i8", 1, b"\xff"), kv("t.u16", 2, b"\x01\x02"),
           kv("t.i16", 3, b"\xff\xff"), kv("t.i32", 5, struct.pack("<i", -3)), kv("t.u64", 10, struct.pack("<Q", 9)),
           kv("t.i64", 11, struct.pack("<q", -9)), kv("t.f64", 12, struct.pack("<d", 0.5)), kv("t.u8", 0, b"\x07"),
           kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, len(toks)) + b"".join(s(t) for t in toks)),
           kv("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, len(toks)) + b"".join(struct.pack("<f", -i) for i in range(len(toks)))),
           kv("tokenizer.ggml.token_type", 9, struct.pack("<IQ", 5, len(toks)) + b"".join(struct.pack("<i", 1) for _ in toks))]
    f32 = b"".join(struct.pack("<f", i * 0.25) for i in range(64))
    q8 = (struct.pack("<e", 0.5) + bytes(range(32))) * 2
    tensors = [tensor("token_embd.weight", [32, 2], 0, 0), tensor("blk.0.attn_q.weight", [64], 8, 256)]
    data = f32[:256] + q8 + b"\0" * 28
    put("gguf", "llama_v3", build(3, kvs, tensors, data))
    put("gguf", "llama_v2", build(2, kvs, tensors, data))
    put("gguf", "aligned_64", build(3, kvs + [kv("general.alignment", 4, struct.pack("<I", 64))],
                                    [tensor("a", [16], 0, 0), tensor("b", [16], 1, 64)],
                                    f32[:64] + b"\0" * 0 + f32[:32] + b"\0" * 32, 64))
    put("gguf", "empty", build(3, [], [], b""))
    put("gguf", "metadata_only", build(3, kvs[:5], [], b""))


if __name__ == "__main__":
    router()
    validate()
    safetensors()
    config()
    multipart()
    gguf()
    base64_seeds()
    audio_in()
