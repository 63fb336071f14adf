export {
  type FakeChatBody,
  type FakeLargeReplyOptions,
  type FakeLlmMatcher,
  type FakeLlmRequest,
  type FakeLlmRule,
  type FakeLlmServer,
  type FakeLlmServerOptions,
  type FakeReply,
  type FakeToolCall,
  type FakeUsage,
  createFakeLlmServer,
  fakeReplies,
} from './fake-llm-server.js';
