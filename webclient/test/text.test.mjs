// Unit tests of the page's text helpers, run by `node --test test/`
// (npm test; TestNodeUnitTests in webclient_test.go runs them with go test).
import { test } from "node:test";
import assert from "node:assert/strict";
import { findLinks, charCount } from "../src/text.js";

// links returns the [text, href] pairs of the links findLinks finds.
const links = (s) => findLinks(s).filter((p) => p.href).map((p) => [p.text, p.href]);

test("parts join to the text again", () => {
  for (const s of ["", "plain", "see www.example.org, or mail mum@example.org.", "(https://a.org/x)", "x@y"]) {
    assert.equal(findLinks(s).map((p) => p.text).join(""), s);
  }
});

test("http and https URLs", () => {
  assert.deepEqual(links("see https://example.org/a?b=1 and http://x.org."), [
    ["https://example.org/a?b=1", "https://example.org/a?b=1"],
    ["http://x.org", "http://x.org/"],
  ]);
  assert.deepEqual(links("(https://en.wikipedia.org/wiki/Fire_(disambiguation))"), [
    ["https://en.wikipedia.org/wiki/Fire_(disambiguation)", "https://en.wikipedia.org/wiki/Fire_(disambiguation)"],
  ]);
  assert.deepEqual(links("javascript:alert(1) data:text/html,x"), []);
});

test("www. hosts become https links", () => {
  assert.deepEqual(links("go to www.example.org!"), [["www.example.org", "https://www.example.org/"]]);
  assert.deepEqual(links("www.example.org/path?q=1."), [["www.example.org/path?q=1", "https://www.example.org/path?q=1"]]);
  assert.deepEqual(links("WWW.Example.ORG"), [["WWW.Example.ORG", "https://www.example.org/"]]);
  // Not a host of its own: inside a word or URL, or no dot after www.x.
  assert.deepEqual(links("foo.www.example.org awww.example.org"), []);
  assert.deepEqual(links("www. and www.x"), []);
  assert.deepEqual(links("https://www.example.org"), [["https://www.example.org", "https://www.example.org/"]]);
});

test("e-mail addresses become mailto: links", () => {
  assert.deepEqual(links("write to mum@example.org."), [["mum@example.org", "mailto:mum@example.org"]]);
  assert.deepEqual(links("<dad.smith+chat@mail.example.co.uk>"), [
    ["dad.smith+chat@mail.example.co.uk", "mailto:dad.smith+chat@mail.example.co.uk"],
  ]);
  assert.deepEqual(links("not an address: a@b, @home, x@y.z"), []);
  // The address in a URL stays part of the URL.
  assert.deepEqual(links("https://example.org/u/mum@example.org"), [
    ["https://example.org/u/mum@example.org", "https://example.org/u/mum@example.org"],
  ]);
});

test("charCount counts code points", () => {
  assert.equal(charCount("a😀b"), 3);
});
