// tokenize.mjs: tokenize texts with llama.cpp (through node-llama-cpp's
// prebuilt binaries, CPU only, vocabulary only) for comparison with
// mediad's tokenizer (tests/blackbox/test_tokenizer_llamacpp.py).
//
//   node tokenize.mjs MODEL.gguf CASES.json
//
// CASES.json: [{"text": "...", "special": true|false}, ...]. Prints one
// JSON array of ids per case, one per line, in order. llama.cpp's own
// tokenize is called with add_special off (node-llama-cpp's
// model.tokenize never adds BOS/EOS) and parse_special = case.special.
import {readFileSync} from "node:fs";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const [modelPath, casesPath] = process.argv.slice(2);
if (!modelPath || !casesPath) {
    console.error("usage: node tokenize.mjs MODEL.gguf CASES.json");
    process.exit(2);
}
const cases = JSON.parse(readFileSync(casesPath, "utf8"));
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath, vocabOnly: true});
for (const c of cases)
    console.log(JSON.stringify(Array.from(model.tokenize(c.text, c.special))));
await model.dispose();
await llama.dispose();
