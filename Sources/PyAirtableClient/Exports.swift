// The wire models are part of the SDK's API: `import PyAirtableClient` is all a program needs.
@_exported import PyAirtableModels
