// Package broker runs hearth's embedded MQTT broker (mochi-mqtt): the TCP,
// TLS and WebSocket listeners, the hook that authenticates clients, applies
// the access policy and validates every publish, per-connection rate
// limits, and the presence each user's connections make.
package broker
