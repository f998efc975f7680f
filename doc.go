// Package hearth holds the domain of hearth, a self-hosted family chat: the
// names of rooms and users, the MQTT topic grammar, the message payload and
// its archived form, the access policy and the configuration. The packages
// beside it (broker, bridge, history, webclient) each do one job with these
// types; only cmd/hearth wires them together.
package hearth
