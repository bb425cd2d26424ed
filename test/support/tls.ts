import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A throwaway certificate authority and a server certificate it signed for 127.0.0.1. */
export interface TestCertificates {
  dir: string;
  /** PEM files, for redis-server. */
  files: { ca: string; cert: string; key: string };
  /** The CA certificate, for a client's `tls.ca`. */
  ca: Buffer;
  /** Another CA that signed nothing here: a client trusting only it must refuse the server. */
  otherCa: Buffer;
  remove(): void;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe', timeout: 30_000 });
}

function makeCa(dir: string, name: string): void {
  openssl(dir, [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.crt`,
    '-days',
    '1',
    '-subj',
    `/CN=${name} test CA`,
  ]);
}

/** Creates the CA, the server certificate (subjectAltName IP:127.0.0.1) and a second CA, in a temp dir. */
export function makeTestCertificates(): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), 'redis-tx-tls-'));
  try {
    makeCa(dir, 'ca');
    makeCa(dir, 'other-ca');
    openssl(dir, [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'server.key',
      '-out',
      'server.csr',
      '-subj',
      '/CN=127.0.0.1',
    ]);
    writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
    openssl(dir, [
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'server.crt',
      '-days',
      '1',
      '-extfile',
      'san.ext',
    ]);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    dir,
    files: {
      ca: join(dir, 'ca.crt'),
      cert: join(dir, 'server.crt'),
      key: join(dir, 'server.key'),
    },
    ca: readFileSync(join(dir, 'ca.crt')),
    otherCa: readFileSync(join(dir, 'other-ca.crt')),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** redis-server arguments that add a TLS port beside the plain one (which the test bed uses to see it is up). */
export function tlsServerArgs(certificates: TestCertificates, tlsPort: number): string[] {
  const { files } = certificates;
  return [
    '--tls-port',
    String(tlsPort),
    '--tls-cert-file',
    files.cert,
    '--tls-key-file',
    files.key,
    '--tls-ca-cert-file',
    files.ca,
    '--tls-auth-clients',
    'no',
  ];
}
