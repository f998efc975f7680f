package broker

import (
	mqtt "github.com/mochi-mqtt/server/v2"
)

// noSendQuota turns off mochi's outbound flow control for a connection.
//
// mochi's MQTT 5 flow control is broken in ways that lose and stall
// messages. When a client's Receive Maximum is used up, further QoS 1
// messages wait in the inflight store; after each packet from the client
// mochi sends the next waiting one and deletes its record, so its PUBACK
// never gives the send quota back (and it would not be resent after a
// disconnect). Messages that start waiting after the client has
// acknowledged everything wait for its next PINGREQ. The quota is read and
// decreased without a lock, so concurrent publishers overshoot it. An MQTT
// 5 mosquitto_sub (Receive Maximum 20) got 48 of a 5,000-message burst.
//
// hearth therefore sends QoS 1 messages without waiting for the client's
// Receive Maximum, as to an MQTT 3.1.1 client. What a client may have
// unacknowledged stays bounded by the inflight limit (maxInflight). The
// clients hearth is tested with (libmosquitto, paho, MQTT.js) accept this.
//
// It runs at CONNECT (OnConnect), after mochi has read the client's
// Receive Maximum and before a session is resumed, which copies the same
// value.
func noSendQuota(cl *mqtt.Client) {
	cl.Properties.Props.ReceiveMaximum = 0
	cl.State.Inflight.ResetSendQuota(0)
}
