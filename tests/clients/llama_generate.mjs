// llama_generate.mjs: llama.cpp (through node-llama-cpp, pinned) loads GGUF
// files and answers, as the independent implementation the llama runner is
// checked against. Prints one JSON line per file:
//   {"file","tokens":[ids of the text],"greedy":"<12 tokens after the prompt>"}
// Usage: node llama_generate.mjs <text> <prompt> <file.gguf>...
import { getLlama, LlamaCompletion } from 'node-llama-cpp';

const [text, prompt, ...files] = process.argv.slice(2);
const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
for (const file of files) {
  const model = await llama.loadModel({ modelPath: file });
  const ctx = await model.createContext({ contextSize: 256, threads: 1 });
  const completion = new LlamaCompletion({ contextSequence: ctx.getSequence() });
  const greedy = await completion.generateCompletion(prompt, { maxTokens: 12, temperature: 0 });
  console.log(JSON.stringify({ file, tokens: Array.from(model.tokenize(text)), greedy }));
  await ctx.dispose();
  await model.dispose();
}
