export { type ToolCatalog, type ToolCatalogOptions, createToolCatalog, parseToolCatalog } from './catalog.js';
export { CATALOG_DATA } from './catalog-data.js';
export { DEFAULT_ARRAY_ITEMS, type LocalizedText, PARAMETER_TEXTS, TOOL_TEXTS, type ToolTexts } from './catalog-texts.js';
export {
  type CatalogParameterData,
  type CatalogToolData,
  type ItemsSchema,
  PARAMETER_TYPES,
  type ParameterType,
  type PlannerLocale,
  type ToolParameter,
  type ToolSchema,
} from './catalog-types.js';
export {
  type CompactHistoryOptions,
  type CompactSummary,
  type CompactionOptions,
  type CompactionResult,
  DEFAULT_COMPACT_KEEP_RECENT,
  DEFAULT_COMPACT_TEMPERATURE,
  DEFAULT_COMPACT_THRESHOLD,
  compactHistory,
  estimateCutAnswerUsage,
  estimateTokens,
  estimateUsage,
  parseCompactSummary,
  renderCompactSummary,
  splitForCompaction,
} from './compaction.js';
export {
  PlannerError,
  type PlannerErrorCode,
  ProviderCallError,
  type ProviderCallErrorOptions,
  PROVIDER_ERROR_KINDS,
  type ProviderErrorKind,
  RETRYABLE_PROVIDER_ERROR_KINDS,
  isProviderCallError,
} from './errors.js';
export {
  type LlmCallPurpose,
  LLM_OUTPUT_LIMIT_REASONS,
  type LlmOutputLimitReason,
  type LoopStopReason,
  type PlannerEventContext,
  type PlannerEvents,
} from './events.js';
export {
  type FunctionParameterSchema,
  type FunctionParametersSchema,
  type FunctionToolSpec,
  toFunctionSchema,
  toolsToFunctionSchemas,
} from './function-schema.js';
export {
  type JsonSchema,
  SUPPORTED_SCHEMA_KEYWORDS,
  type SchemaValidator,
  type SchemaViolation,
  compileJsonSchema,
} from './json-schema.js';
export { INJECTION_MIN_LENGTH, INJECTION_PATTERNS, POLICY_MODES, type PolicyMode, detectInjectionMarker } from './injection.js';
export { type AiPlanOutput, type PlannedStep, planFromLoop, planStepsFromCalls, planToIteration } from './iteration.js';
export {
  type ChatMessage,
  type FinishReason,
  type LlmAdapter,
  type LlmCompletionRequest,
  type LlmCompletionResponse,
  type ToolCallRequest,
  ZERO_USAGE,
  addUsage,
} from './llm.js';
export {
  DEFAULT_MAX_ROUNDS,
  DEFAULT_MAX_SUMMARY_CHARS,
  DEFAULT_MAX_TOOL_ARGUMENT_BYTES,
  DEFAULT_MAX_TOOL_CALLS,
  type PlannerLoopDeps,
  type PlannerLoopInput,
  type PlannerLoopResult,
  RECENT_CALLS_WINDOW,
  RECORDED_TOOL_RESULT,
  runPlannerLoop,
} from './loop.js';
export type { BodyRead } from './read-body.js';
export { type LlmHttpRequest, type LlmHttpResponse, type LlmTransport, createFetchTransport } from './llm-transport.js';
export {
  type AuthHeaderStyle,
  OPENAI_ADAPTER_DEFAULTS,
  type OpenAiCompatibleAdapterDeps,
  type OpenAiCompatibleAdapterOptions,
  createOpenAiCompatibleAdapter,
} from './openai-adapter.js';
export {
  type PlanFailureReason,
  type PlanMissionRequest,
  type PlanMissionResult,
  type Planner,
  type PlannerDeps,
  type PlannerOptions,
  createPlanner,
  planFailureReason,
} from './planner.js';
export { createPlannerPort } from './planner-port.js';
export { FALLBACK_POLICY_DECISION, filterToolsByPolicy, resolveToolPolicy } from './policy.js';
export {
  CIPHERTEXT_PREFIX,
  PROMPT_HISTORY_LIMIT,
  type PlannerPromptInput,
  type PromptAgent,
  type PromptMission,
  USER_DATA_CLOSE,
  USER_DATA_OPEN,
  buildPlannerPrompts,
  buildSystemPrompt,
  buildUserPrompt,
} from './prompt.js';
export {
  BUDGET_ESCALATE_RATIO,
  BUDGET_WARN_RATIO,
  type ExecutedCall,
  type LoopState,
  RETRY_LOOP_MIN_ROUND,
  type Reminder,
  type ReminderChannel,
  type ReminderChannelOptions,
  type ReminderProducer,
  type ReminderSeverity,
  type ToolResult,
  createReminderChannel,
} from './reminders.js';
export { type ToolCallCheck, type ToolCallRejectReason, type ToolSet, createToolSet } from './tool-set.js';
