import type { PolicyDecision } from '@mana-ai/core';

/** JSON types a catalog parameter may declare (docs/wire-contract.md#tool-calls-on-the-wire). */
export type ParameterType = 'string' | 'number' | 'integer' | 'boolean' | 'array' | 'object';

/** The parameter types accepted in a catalog, in a checkable form. */
export const PARAMETER_TYPES: readonly ParameterType[] = ['string', 'number', 'integer', 'boolean', 'array', 'object'];

/** One parameter of a tool as the contract file describes it (no description). */
export interface CatalogParameterData {
  readonly name: string;
  readonly type: ParameterType;
  readonly required: boolean;
  readonly enum?: readonly string[];
}

/** One tool as the contract file describes it (no description). */
export interface CatalogToolData {
  readonly name: string;
  readonly module: string;
  readonly defaultPolicy: PolicyDecision;
  readonly parameters: readonly CatalogParameterData[];
}

/** A JSON-schema fragment for array elements (`items`). */
export type ItemsSchema = Readonly<Record<string, unknown>>;

/** A parameter of a usable tool: contract data plus a description in the catalog's locale. */
export interface ToolParameter extends CatalogParameterData {
  readonly description: string;
  /** Element schema of an `array` parameter (always set for arrays). */
  readonly items?: ItemsSchema;
}

/** A tool of the catalog with descriptions in the catalog's locale (docs/wire-contract.md#tool-calls-on-the-wire `ToolSchema`). */
export interface ToolSchema {
  readonly name: string;
  readonly module: string;
  readonly description: string;
  readonly defaultPolicy: PolicyDecision;
  readonly parameters: readonly ToolParameter[];
}

/** Locales the built-in descriptions and prompts are written in. */
export type PlannerLocale = 'de' | 'en';
