// JSON Schema validation; see Validator.swift.
