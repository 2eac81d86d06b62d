// The wire models and the cache's vocabulary (fetch policies, tags, lifetimes) are part of the
// SDK's API: `import PyAirtableClient` is all a program needs.
@_exported import ClientCache
@_exported import OfflineQueue
@_exported import PyAirtableModels
