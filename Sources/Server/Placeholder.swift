// Server: see Application.swift.
