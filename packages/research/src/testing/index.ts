export {
  type FakeHandler,
  type FakeReply,
  type FakeResearchServer,
  type FakeResearchServerOptions,
  type FakeRoute,
  type FakeTask,
  type RecordedRequest,
  startFakeResearchServer,
} from './fake-research-server.js';
export { type MemoryResearchJobStore, createMemoryResearchJobStore } from './memory-job-store.js';
