import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ClientError, Status } from 'nice-grpc';
import { TokenFileError, tokenFileAuthorization } from '../../src/agent/token.js';
import { describeTransportError } from '../../src/agent/transport-error.js';

const dir = mkdtempSync(join(tmpdir(), 'dw-token-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('agent token file', () => {
  it('is read again for every stream: a rotated token is sent without a restart', () => {
    const file = join(dir, 'token');
    writeFileSync(file, 'first\n');
    const auth = tokenFileAuthorization(file, true);
    assert.equal(auth(), 'Bearer first');
    writeFileSync(file, 'second');
    assert.equal(auth(), 'Bearer second');
  });

  it('absent at the default path: no token; given explicitly: an error naming the file and the flag', () => {
    const missing = join(dir, 'missing');
    assert.equal(tokenFileAuthorization(missing, false)(), undefined);
    assert.throws(
      () => tokenFileAuthorization(missing, true)(),
      (e: unknown) => {
        assert.ok(e instanceof TokenFileError);
        assert.match(e.message, /cannot read the collector token file ".*missing": ENOENT \(check --token-file\)/);
        return true;
      },
    );
    const empty = join(dir, 'empty');
    writeFileSync(empty, '  \n');
    assert.throws(() => tokenFileAuthorization(empty, false)(), /token file ".*empty" is empty/);
  });

  it('the collector’s auth refusals get a hint first, the raw status after', () => {
    const t = describeTransportError(new ClientError('/p', Status.PERMISSION_DENIED, 'hello names node "b"'), 'c:1');
    assert.match(t, /^auth: the collector refused this agent's identity .* \[PERMISSION_DENIED: hello names node "b"\]$/);
    const u = describeTransportError(new ClientError('/p', Status.UNAUTHENTICATED, 'no bearer token'), 'c:1');
    assert.match(u, /^auth: the collector did not accept our token/);
  });
});
