// Projections: see Projection.swift.
