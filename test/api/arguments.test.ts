/**
 * The public entry points turn null, missing and wrong-typed arguments into the package's typed
 * errors naming the argument and what came (never a TypeError from inside), and configuration keys
 * are own keys only (Object.prototype's names are not model options).
 */
import { describe, expect, it } from 'vitest';
import { AdamW, CMAE, DTypeError, DataLoader, ShapeError, Tensor, ValueError, train } from '../../src/index';

describe('arguments of the public entry points', () => {
  it('are typed errors naming the argument and what came', async () => {
    const model = await CMAE.create({ preset: 'micro' });
    const dataset = { name: 'x', size: 4, height: 8, width: 8, channels: 1 as const, pixels: new Uint8Array(256) };
    const cases: [string, () => unknown, RegExp, new (...args: never[]) => Error][] = [
      ['CMAE.create(null)', () => CMAE.create(null as never), /options must be an object \(or omitted\), got null/, ValueError],
      ['CMAE.create(5)', () => CMAE.create(5 as never), /options must be an object \(or omitted\), got number 5/, ValueError],
      ['CMAE.create({ toString })', () => CMAE.create({ preset: 'micro', toString: 5 } as never), /unknown model option 'toString'/, ValueError],
      ['CMAE.create({ __proto__ })', () => CMAE.create(JSON.parse('{"preset":"micro","__proto__":{"dim":4}}')), /unknown model option '__proto__'/, ValueError],
      ['CMAE.load(undefined)', () => CMAE.load(undefined as never), /path must be a non-empty string, got undefined/, ValueError],
      ['CMAE.load(42)', () => CMAE.load(42 as never), /path must be a non-empty string, got number 42/, ValueError],
      ['lossAndGrad(null)', () => model.lossAndGrad(null as never), /input must be an object, got null/, ValueError],
      ['lossAndGrad({})', () => model.lossAndGrad({} as never), /input.images is required/, ValueError],
      ['lossAndGrad({ images: "x" })', () => model.lossAndGrad({ images: 'x' as never }), /images must be a Float32Array or a Tensor/, ValueError],
      ['encode(x, null)', () => model.encode(new Float32Array(768), null as never), /options must be an object \(or omitted\), got null/, ValueError],
      ['loadStateDict(null)', () => model.loadStateDict(null as never), /state must be a Map of parameter name to values, got null/, ValueError],
      ['save(undefined)', () => model.save(undefined as never), /path must be a non-empty string, got undefined/, ValueError],
      ['new AdamW(null)', () => new AdamW(null as never), /model must be a CMAE or a Classifier, got null/, ValueError],
      ['new AdamW({})', () => new AdamW({} as never), /model must be a CMAE or a Classifier, got a plain object/, ValueError],
      ['new DataLoader(null)', () => new DataLoader(null as never, { batchSize: 2, augment: { outSize: 8 } }), /dataset must be an object, got null/, ValueError],
      ['new DataLoader(ds, null)', () => new DataLoader(dataset, null as never), /options must be an object, got null/, ValueError],
      ['train(null)', () => train(null as never), /options must be an object, got null/, ValueError],
      ['train({})', () => train({} as never), /options.model must be a CMAE, got undefined/, ValueError],
      ['train({ model })', () => train({ model } as never), /options.data must be a batch source/, ValueError],
      ['Tensor.from(null)', () => Tensor.from(null as never, [1]), /data must be a Float32Array/, DTypeError],
      ['Tensor.from(x, null)', () => Tensor.from(new Float32Array(1), null as never), /shape must be an array of dimensions/, ShapeError],
    ];
    for (const [name, call, message, type] of cases) {
      let error: unknown;
      try {
        await call();
      } catch (e) {
        error = e;
      }
      expect(error, name).toBeInstanceOf(type);
      expect((error as Error).message, name).toMatch(message);
    }
    model.dispose();
  });
});
