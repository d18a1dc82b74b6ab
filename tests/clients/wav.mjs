// wav.mjs: a 16 kHz mono 16-bit PCM WAV of a few tones (no randomness).
export function makeWav(seconds) {
  const rate = 16000, n = Math.round(rate * seconds);
  const b = Buffer.alloc(44 + n * 2);
  b.write('RIFF', 0); b.writeUInt32LE(36 + n * 2, 4); b.write('WAVE', 8);
  b.write('fmt ', 12); b.writeUInt32LE(16, 16); b.writeUInt16LE(1, 20); b.writeUInt16LE(1, 22);
  b.writeUInt32LE(rate, 24); b.writeUInt32LE(rate * 2, 28); b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34); b.write('data', 36); b.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) {
    const t = i / rate, f = 220 * (1 + Math.floor(t * 4) % 3);
    b.writeInt16LE(Math.round(6000 * Math.sin(2 * Math.PI * f * t)), 44 + i * 2);
  }
  return b;
}
