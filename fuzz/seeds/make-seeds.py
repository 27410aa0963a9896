#!/usr/bin/env python3
"""Regenerate the seed files in command/, data/ and session/ (run from anywhere).

Each target has its own input format; see the header of fuzz_targets/<target>.rs.
"""
import os
os.chdir(os.path.dirname(os.path.abspath(__file__)))
for d in ("command", "data", "session"):
    os.makedirs(d, exist_ok=True)
import base64, os
def w(path, data):
    with open(path, 'wb') as f: f.write(data)

# command: one command line, without its LF (a trailing CR is allowed)
cmds = {
 'ehlo': b'EHLO client.example\r',
 'helo': b'HELO [192.0.2.1]',
 'mail-params': b'MAIL FROM:<alice@example.net> SIZE=1000 BODY=8BITMIME\r',
 'mail-null': b'MAIL FROM:<>',
 'mail-quoted': b'MAIL FROM:<"a b\\>c"@example.net>',
 'mail-bare': b'mail from: alice@example.net',
 'rcpt-route': b'RCPT TO:<@r1.example,@r2.example:bob@example.org>',
 'rcpt-literal': b'rcpt to:<postmaster@[127.0.0.1]>\r',
 'rcpt-param': b'RCPT TO:<bob@example.org> NOTIFY=NEVER',
 'data': b'DATA\r',
 'auth': b'AUTH PLAIN AGFsaWNlAHNlY3JldA==',
 'starttls': b'STARTTLS\r',
 'nul': b'MAIL FROM:<a\x00b@c>',
 'quit': b'QUIT\r',
 'mail-smtputf8': 'MAIL FROM:<jörg@bücher.example> SMTPUTF8 SIZE=10\r'.encode(),
 'rcpt-utf8': 'RCPT TO:<用户@example.org>'.encode(),
 'mail-bad-utf8': b'MAIL FROM:<j\xf6rg@b.example> SMTPUTF8',
}
for k, v in cmds.items(): w(f'command/{k}', v)

# data: [databytes selector, n, n%17 chunk lengths, message...]
msg = (b'Received: from a by b\r\nDelivered-To: x@example.org\r\nSubject: hi\r\n\r\n'
       b'body line\r\n..leading dot\r\n.\r\n\r\nlast\r\n.\r\nQUIT\r\n')
w('data/message', b'\x00\x00' + msg)
w('data/message-split', b'\x00\x04\x01\x07\x02\x00' + msg)
w('data/databytes', bytes([1 | (20 << 2), 2, 3, 5]) + msg)
w('data/databytes-x16', bytes([2 | (2 << 2), 0]) + msg)
w('data/hops', b'\x00\x00' + b''.join(b'Received: hop %d\r\n' % i for i in range(101)) + b'\r\nbody\r\n.\r\n')
w('data/bare-lf', b'\x00\x00' + b'Subject: x\r\n\r\nline\nMAIL FROM:<evil@example>\r\n.\r\n')
w('data/bare-cr', b'\x00\x00' + b'Subject: x\r\n\r\nline\rmore\r\n.\r\n')
w('data/smuggle', b'\x00\x02\x05\x01' + b'a\r\n.\nRCPT TO:<x@y>\r\n\r\n.\r\n')
w('data/dot-cr', b'\x00\x00' + b'a\r\n.\rX\r\n.\r\n')
w('data/empty-message', b'\x00\x00' + b'.\r\nQUIT\r\n')

# session: [cfg, auth, n, n%17 control bytes, client bytes...]
txn = (b'MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME\r\n'
       b'RCPT TO:<bob@example.org>\r\nRCPT TO:<carol@sub.wild.example>\r\n'
       b'RCPT TO:<mallory@elsewhere.example>\r\nDATA\r\n'
       b'Subject: hi\r\n\r\nhello\r\n..dot\r\n.\r\n')
plain = b'EHLO client.example\r\n' + txn + b'QUIT\r\n'
w('session/plain', b'\x00\x00\x00' + plain)
# One command per read, as a non-pipelining client sends them.
lines = plain.split(b'\r\n')
lens = bytes(len(l) + 2 for l in lines[:15] if l)
w('session/lockstep', b'\x00\x00' + bytes([len(lens)]) + lens + plain)
w('session/helo-two-messages', b'\x00\x00\x00' + b'HELO c\r\n' + txn + b'RSET\r\n' + txn + b'QUIT\r\n')
w('session/queue-fails', b'\x00\x00\x02\x00\xc3' + b'EHLO c\r\n' + txn + txn + b'QUIT\r\n')
w('session/queue-start-fails', b'\x00\x00\x01\xf0' + b'EHLO c\r\n' + txn + b'NOOP\r\nQUIT\r\n')
first = b'EHLO client.example\r\nSTARTTLS\r\n'
w('session/starttls', b'\x00\x00\x02' + bytes([len(first), 0]) + first + b'EHLO client.example\r\n' + txn + b'QUIT\r\n')
w('session/starttls-injection', b'\x00\x00\x00' + b'EHLO c\r\nSTARTTLS\r\nMAIL FROM:<evil@example>\r\n')
w('session/bare-lf', b'\x00\x00\x00' + b'EHLO c\nMAIL FROM:<a@b>\nRCPT TO:<bob@example.org>\nDATA\nhi\n.\nQUIT\n')
w('session/bare-lf-in-data', b'\x00\x00\x00' + b'EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nhi\n.\nRSET\r\n.\r\n')
w('session/databytes', b'\x01\x00\x00' + b'EHLO c\r\nMAIL FROM:<a@b> SIZE=1000\r\nMAIL FROM:<a@b>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n' + b'x' * 100 + b'\r\n.\r\nQUIT\r\n')
w('session/errors', b'\x40\x00\x00' + b'GET / HTTP/1.1\r\nHost: x\r\n\r\nDATA\r\nRCPT TO:<a@b>\r\n')
w('session/long-line', b'\x00\x00\x00' + b'NOOP ' + b'a' * 3000 + b'\r\nNOOP\r\nQUIT\r\n')
plain_ir = base64.b64encode(b'\x00alice\x00secret')
w('session/auth-plain', b'\x00\x00\x00' + b'EHLO c\r\nAUTH PLAIN ' + plain_ir + b'\r\n' + txn.replace(b'bob@example.org', b'x@relay.example') + b'QUIT\r\n')
w('session/auth-login', b'\x00\x00\x02\xc1\x00' + b'EHLO c\r\nAUTH LOGIN\r\n' + base64.b64encode(b'alice') + b'\r\n' + base64.b64encode(b'wrong') + b'\r\nAUTH LOGIN ' + base64.b64encode(b'alice') + b'\r\n' + base64.b64encode(b'secret') + b'\r\nQUIT\r\n')
w('session/auth-cram', b'\x00\x80\x00' + b'EHLO c\r\nAUTH CRAM-MD5\r\n' + base64.b64encode(b'alice 0123456789abcdef0123456789abcdef') + b'\r\n' + txn + b'QUIT\r\n')
w('session/auth-cancel', b'\x00\x40\x00' + b'EHLO c\r\nAUTH PLAIN\r\n*\r\nAUTH PLAIN\r\n' + base64.b64encode(b'\x00a\x00b\x00c') + b'\r\nQUIT\r\n')
w('session/force-tls', b'\x08\x18\x00' + b'EHLO c\r\nMAIL FROM:<a@b>\r\nAUTH PLAIN ' + plain_ir + b'\r\nSTARTTLS\r\n')
w('session/relay-rules', b'\x00\x01\x00' + b'HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<u%v@example.org>\r\nRCPT TO:<u@more.example>\r\nRCPT TO:<u@[127.0.0.1]>\r\nRCPT TO:<u@broken.example>\r\n')
w('session/badmailfrom', b'\x80\x01\x00' + b'HELO c\r\nMAIL FROM:<x@bad.example>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nQUIT\r\n')
w('session/rcpt-checks', b'\x80\x01\x00' + b'HELO client.example\r\nMAIL FROM:<a@b>\r\nRCPT TO:<trap@example.org>\r\nRCPT TO:<x@example.org>\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<a%b@example.org>\r\nRCPT TO:<c@x.wild.example>\r\nDATA\r\nhi\r\n.\r\nHELO evil.example\r\nMAIL FROM:<a@b>\r\nRCPT TO:<bob@example.org>\r\nQUIT\r\n')
w('session/rcptcheck', b'\x40\x00\x03\x00\x09\x1c' + b'HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<carol@example.org>\r\nRCPT TO:<dave@example.org>\r\nDATA\r\n')
hops = b''.join(b'Received: from hop%d\r\n' % i for i in range(100))
w('session/too-many-hops', b'\x00\x00\x00' + b'HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n' + hops + b'\r\nloop\r\n.\r\nQUIT\r\n')
w('session/split-long-line', b'\x00\x00\x04\x64\x64\xc8\x00' + b'NOOP ' + b'b' * 2100 + b'\r\nHELP\r\nVRFY x\r\nQUIT\r\n')
# session with every qmail-spp hook and a policy service (n >= 0x80; k = n % 17
# answer bytes pick plugin output and policy actions, see fuzz_targets/session.rs)
def hooks_n(k):
    return next(n for n in range(0x80, 0x100) if n % 17 == k)
hsess = (b'EHLO client.example\r\nMAIL FROM:<a@sender.example>\r\nRCPT TO:<u@example.org>\r\n'
         b'RCPT TO:<v@example.org>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n')
w('session/hooks-quiet', bytes([0, 0, hooks_n(0)]) + hsess)
w('session/hooks-effects', bytes([0, 0, hooks_n(6), 0, 9, 10, 11, 3, 4]) + hsess)
w('session/hooks-refusals', bytes([0, 0, hooks_n(5), 0, 5, 6, 12, 13]) + b'EHLO a\r\nEHLO b\r\nMAIL FROM:<a@b>\r\nMAIL FROM:<a@b>\r\nRCPT TO:<u@example.org>\r\nRSET\r\nQUIT\r\n')
w('session/hooks-policy', bytes([0, 0, hooks_n(4), 0, 1, 1, 1, 3, 4, 6, 7]) + b'EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<u@example.org>\r\nRCPT TO:<w@example.org>\r\nRCPT TO:<x@example.org>\r\nDATA\r\nhi\r\n.\r\n')
