// A preload for `node --import <this file>`: shifts the process's wall clock by
// SKEW_CLOCK_OFFSET_MS (an integer, may be negative) without touching production code. `Date.now()`,
// `new Date()` and `Date()` (no arguments) read the shifted clock; dates built from a value, the
// parsers (`Date.parse`, `Date.UTC`), `performance.now()` and timers are unchanged, as on a machine
// whose clock is simply set wrong. `instanceof Date`, subclasses and the prototype keep working.
// biome-ignore lint/suspicious/noUndeclaredEnvVars: set by a test for the runner process it spawns, never by a turbo task
const raw = process.env.SKEW_CLOCK_OFFSET_MS ?? '0';
const offset = Number(raw);
if (!Number.isSafeInteger(offset)) throw new Error(`SKEW_CLOCK_OFFSET_MS must be an integer, got ${JSON.stringify(raw)}`);

const RealDate = globalThis.Date;
const realNow = RealDate.now.bind(RealDate);
const skewedNow = () => realNow() + offset;

globalThis.Date = new Proxy(RealDate, {
  construct(target, args, newTarget) {
    return Reflect.construct(target, args.length === 0 ? [skewedNow()] : args, newTarget === globalThis.Date ? target : newTarget);
  },
  apply() {
    return new RealDate(skewedNow()).toString();
  },
  get(target, property, receiver) {
    if (property === 'now') return skewedNow;
    return Reflect.get(target, property, receiver);
  },
});
