// llama_greedy.mjs: llama.cpp's greedy continuation of given token ids, with
// the two most likely tokens at each step (node-llama-cpp, pinned), to
// compare with mediad-llamarun. Prints one JSON line:
//   {"greedy":[ids],"top2":[[id,p,id,p],...]}   (p: probabilities)
// Usage: node llama_greedy.mjs FILE.gguf ID,ID,... N
import { getLlama } from 'node-llama-cpp';

const [file, ids, n] = process.argv.slice(2);
const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
const model = await llama.loadModel({ modelPath: file });
const ctx = await model.createContext({ contextSize: 512, threads: 1 });
const seq = ctx.getSequence();
let input = ids.split(',').map(Number);
const greedy = [], top2 = [];
for (let s = 0; s < Number(n); s++) {
  const items = input.map((t, i) => i === input.length - 1
    ? [t, { generateNext: { probabilities: true } }] : t);
  const out = await seq.controlledEvaluate(items);
  const probs = [...out[input.length - 1].next.probabilities.entries()]
    .sort((a, b) => b[1] - a[1]);
  const tok = probs[0][0];
  greedy.push(tok);
  top2.push([probs[0][0], probs[0][1], probs[1][0], probs[1][1]]);
  input = [tok];
}
console.log(JSON.stringify({ greedy, top2 }));
await ctx.dispose();
await model.dispose();
