package main

// products/gen writes schema/<product>.gen.graphqls from the data products'
// Go models, then runs gqlgen (a tool dependency in go.mod) with its plugin
// to regenerate graph/ and the resolvers' generated bodies.
//go:generate go run ./products/gen
