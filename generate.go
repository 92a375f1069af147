package main

// graph/ is generated from schema/ by gqlgen (a tool dependency in go.mod).
//go:generate go tool gqlgen generate --config gqlgen.yml
