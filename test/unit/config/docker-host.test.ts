import { dockerHostIdentity } from '../../../config/docker-host';

describe('dockerHostIdentity: the machine a docker.host URL reaches', () => {
  test.each([
    ['another user', 'ssh://deploy@db1.example.com', 'ssh://root@db1.example.com'],
    ['the case of the name', 'ssh://db1.example.com', 'ssh://DB1.Example.COM'],
    ["ssh's default port", 'ssh://deploy@db1.example.com', 'ssh://deploy@db1.example.com:22'],
    ["the daemon's TLS port over tcp, ssh without one", 'tcp://db1:2376', 'ssh://db1'],
    ["the daemon's plain port", 'tcp://db1:2375', 'tcp://db1'],
    ['a fully qualified name with its root dot', 'ssh://db1.example.com.', 'ssh://db1.example.com'],
    ['a socket and a pipe', 'unix:///var/run/docker.sock', 'npipe:////./pipe/docker_engine'],
    ['two sockets', 'unix:///var/run/docker.sock', 'unix:///run/user/1000/docker.sock'],
    ['a socket and ssh to localhost', 'unix:///var/run/docker.sock', 'ssh://me@localhost'],
    ['a socket and tcp to 127.0.0.1', 'unix:///var/run/docker.sock', 'tcp://127.0.0.1:2375'],
    ['IPv6 loopback', 'unix:///var/run/docker.sock', 'ssh://[::1]'],
    ['an IPv6 address in two cases', 'ssh://[2001:DB8::1]', 'tcp://[2001:db8::1]:2376'],
  ])('one machine whatever %s', (_, a, b) => {
    expect(dockerHostIdentity(a)).toBe(dockerHostIdentity(b));
  });

  test.each([
    ['two host names', 'ssh://db1.example.com', 'ssh://db2.example.com'],
    ['a name and a longer one', 'ssh://db1', 'ssh://db1.example.com'],
    ['two ssh tunnels through localhost', 'ssh://deploy@localhost:2201', 'ssh://deploy@localhost:2202'],
    ['a tunnel and the local machine', 'ssh://deploy@localhost:2201', 'unix:///var/run/docker.sock'],
  ])('different machines: %s', (_, a, b) => {
    expect(dockerHostIdentity(a)).not.toBe(dockerHostIdentity(b));
  });
});
