import PyAirtableModels

// GRDB also declares `Record` and `Table`; inside the server these names mean the wire models.
typealias Record = PyAirtableModels.Record
typealias Table = PyAirtableModels.Table
