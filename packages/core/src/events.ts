import type { DispatcherEvents } from './run-events.js';

/** A map of event names to payload types. */
export type EventMap = Record<string, unknown>;

/**
 * Every event of the mana-ai packages, by name, on the one bus they share (`manaCore.events`). Core
 * declares its own (the dispatcher's); each package adds its slice by declaration merging, the way
 * Fastify decorators are typed:
 *
 * ```ts
 * declare module '@mana-ai/core' {
 *   interface ManaAiEvents extends ProjectionEvents {}
 * }
 * ```
 *
 * so a misspelt event name or a wrong payload does not compile, and no cast is needed.
 */
export interface ManaAiEvents extends DispatcherEvents {}

/** A listener of one event. */
export type EventListener<Payload> = (payload: Payload) => void;

/**
 * A small synchronous, typed event emitter. Packages emit facts (`mission.skipped`,
 * `decrypt.audited`, …); the runner maps them to metrics, logs and spans. A throwing listener
 * never breaks the emitter or the other listeners.
 */
export interface EventBus<Events extends object> {
  /** Subscribes to `name`; returns the function that unsubscribes. */
  on<Name extends keyof Events>(name: Name, listener: EventListener<Events[Name]>): () => void;
  /** Subscribes to every event. */
  onAny(listener: (name: keyof Events, payload: Events[keyof Events]) => void): () => void;
  /** Delivers `payload` to the listeners of `name`. */
  emit<Name extends keyof Events>(name: Name, payload: Events[Name]): void;
}

/**
 * What a package holds of the shared bus: emit its own events and subscribe to them by name. A bus
 * of a wider event map (the runner's {@link ManaAiEvents}) is one of these for every package's slice.
 */
export type EventChannel<Events extends object> = Pick<EventBus<Events>, 'on' | 'emit'>;

/** Options of {@link createEventBus}. */
export interface EventBusOptions {
  /** Called when a listener throws (default: ignored). */
  onListenerError?: (error: unknown, eventName: string) => void;
}

/** Creates an {@link EventBus}. */
export function createEventBus<Events extends object>(options: EventBusOptions = {}): EventBus<Events> {
  const listeners = new Map<keyof Events, Set<EventListener<never>>>();
  const anyListeners = new Set<(name: keyof Events, payload: Events[keyof Events]) => void>();
  const safely = (name: keyof Events, call: () => void): void => {
    try {
      call();
    } catch (error) {
      options.onListenerError?.(error, String(name));
    }
  };
  return {
    on(name, listener) {
      let set = listeners.get(name);
      if (!set) {
        set = new Set();
        listeners.set(name, set);
      }
      set.add(listener as EventListener<never>);
      return () => {
        set.delete(listener as EventListener<never>);
      };
    },
    onAny(listener) {
      anyListeners.add(listener);
      return () => {
        anyListeners.delete(listener);
      };
    },
    emit(name, payload) {
      for (const listener of listeners.get(name) ?? []) {
        safely(name, () => (listener as EventListener<Events[typeof name]>)(payload));
      }
      for (const listener of anyListeners) safely(name, () => listener(name, payload));
    },
  };
}
