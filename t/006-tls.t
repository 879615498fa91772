# wss: the connector behind "listen ... ssl", certificate verification by
# the reverse server, header-only tokens, and client certificates (mTLS)
# checked by nginx before the connector runs.

use lib 't/lib';
use Test::Nginx::Socket;
use Test::Nginx::ReverseMCP;

master_on();
workers(2);

run_tests();

sub tool {
    my ($name) = @_;
    return { name => $name, description => "tool $name",
             inputSchema => { type => 'object' } };
}

# a reverse server on the TLS port
sub tls_srv {
    my (%o) = @_;
    return Test::Nginx::ReverseMCP->new(
        port => $ServerPort2, ssl => 1, ssl_ca => "$CertDir/ca.crt",
        ssl_hostname => 'localhost', tools => [ tool('echo') ], %o);
}

sub entry {
    my ($name, $j) = @_;
    $j //= status_json();
    my ($a) = grep { $_->{name} eq 'a1' } @{ $j->{agents} };
    my ($e) = grep { $_->{name} eq $name } @{ $a->{servers} };
    return $e;
}

__DATA__

=== TEST 1: wss connector: CA-verified client registers, header token only
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t1;
    server s2 token=t2;
    server s3 token=t3;
}
server {
    listen 127.0.0.1:$TEST_NGINX_SERVER_PORT2 ssl;
    server_name localhost;
    ssl_certificate $TEST_NGINX_CERT_DIR/server.crt;
    ssl_certificate_key $TEST_NGINX_CERT_DIR/server.key;

    location /ws {
        reverse_mcp_connector a1;
        reverse_mcp_query_token off;
    }
}
--- config
location = /status { reverse_mcp_status; }
--- test_code
# verified against the test CA, token in the header
my $s1 = tls_srv(name => 's1', token => 't1', via => 'header');
is($s1->connect, 101, 's1: 101 over TLS');
my $sock = $s1->ws->sock;
ok($sock->isa('IO::Socket::SSL'), 's1: the socket is TLS');
is($sock->peer_certificate('cn'), 'localhost', 's1: server certificate CN');
ok($s1->handshake(5), 's1: MCP handshake over TLS');
my $e;
ok(wait_until(sub { $e = entry('s1') }, 3),
   's1 registered (status on the plain port)');
is_deeply([ map { $_->{name} } @{ $e->{tools} } ], ['echo'], 's1 tools');
is($e->{protocol_version}, '2025-06-18', 's1 protocol version');

# verified against the system CAs: the TLS handshake fails
my $s2 = Test::Nginx::ReverseMCP->new(port => $port2, ssl => 1,
    ssl_verify => 1, ssl_hostname => 'localhost', name => 's2',
    token => 't2', via => 'header');
is($s2->connect, 0, 's2 (system CAs): no HTTP response');
like($s2->ws->error, qr/certificate verify failed/,
     's2: certificate verification failed');

# a query token on the TLS location: refused
my $s3 = tls_srv(name => 's3', token => 't3', via => 'query');
is($s3->connect, 401, 's3: query token refused with 401');
like($s3->ws->headers->{'www-authenticate'} // '', qr/^Bearer\b/,
     's3: WWW-Authenticate: Bearer');

# name and token in query and header: the header token is used
my $s3b = tls_srv(name => 's3', token => 't3', via => 'header');
is($s3b->connect, 101, 's3: header token accepted');
ok($s3b->handshake(5), 's3: MCP handshake');
my $j;
ok(wait_until(sub { $j = status_json(); entry('s3', $j) }, 3),
   's3 registered');
ok(!entry('s2', $j), 's2 never registered');
is($j->{counters}{handshakes}, 2, 'two upgrades (s1, s3)');
is($j->{counters}{handshakes_refused}, 1, 'one refusal (the query token)');

$_->close(1000, 'bye') for $s1, $s3b;
ok(wait_until(sub { $j = status_json(); !entry('s1', $j) && !entry('s3', $j) }, 3),
   'both unregistered after a TLS close handshake');
--- error_log eval
[
    qr/reverse_mcp: refused server "s3": query tokens are disabled, send "Authorization: Bearer <token>" \(401\)/,
    qr/SSL_do_handshake\(\) failed .*alert unknown ca/,
    qr/server "s1" of agent "a1" registered with 1 tool\(s\)/,
    qr/server "s3" of agent "a1" registered with 1 tool\(s\)/,
]
--- no_error_log
[alert]
[crit]
token=t3



=== TEST 2: mTLS: ssl_verify_client on in front of the connector
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t1;
}
server {
    listen 127.0.0.1:$TEST_NGINX_SERVER_PORT2 ssl;
    server_name localhost;
    ssl_certificate $TEST_NGINX_CERT_DIR/server.crt;
    ssl_certificate_key $TEST_NGINX_CERT_DIR/server.key;
    ssl_client_certificate $TEST_NGINX_CERT_DIR/ca.crt;
    ssl_verify_client on;

    location /ws {
        reverse_mcp_connector a1;
    }
}
--- config
location = /status { reverse_mcp_status; }
--- test_code
my $ca_key = "$cert_dir/ca.key";
if (!-s $ca_key) {
    Test::Builder->new->skip("no CA key in $cert_dir (TEST_NGINX_CERT_DIR "
                             . 'without ca.key): cannot sign a client '
                             . 'certificate');
} else {
    my ($crt, $key) = client_cert("$servroot/client", 'rmcp-client',
                                  ca_crt => "$cert_dir/ca.crt",
                                  ca_key => $ca_key);
    # a certificate from a CA nginx does not trust
    client_cert("$servroot/client", 'rogue', self_signed => 1);

    # no client certificate: nginx answers 400 before the connector
    my $s = tls_srv(name => 's1', token => 't1');
    is($s->connect, 400, 'no client certificate: 400');
    like($s->ws->body, qr/No required SSL certificate was sent/,
         '400 page: no required SSL certificate');

    # a certificate of another CA: 400 too
    $s = tls_srv(name => 's1', token => 't1', ws_opts => { ssl_opts => {
        SSL_cert_file => "$servroot/client/rogue.crt",
        SSL_key_file => "$servroot/client/rogue.key" } });
    is($s->connect, 400, 'untrusted client certificate: 400');
    like($s->ws->body, qr/The SSL certificate error/,
         '400 page: SSL certificate error');
    is(scalar(@{ (grep { $_->{name} eq 'a1' } @{ status_json()->{agents} })[0]{servers} }),
       0, 'nothing registered');

    # with the client certificate: registered
    $s = tls_srv(name => 's1', token => 't1', ws_opts => { ssl_opts => {
        SSL_cert_file => $crt, SSL_key_file => $key } });
    is($s->connect, 101, 'client certificate: 101');
    ok($s->handshake(5), 'MCP handshake over mTLS');
    my $e;
    ok(wait_until(sub { $e = entry('s1') }, 3), 's1 registered');
    is_deeply([ map { $_->{name} } @{ $e->{tools} } ], ['echo'], 's1 tools');
    my $j = status_json();
    is($j->{counters}{handshakes}, 1, 'one upgrade');
    is($j->{counters}{handshakes_refused}, 0,
       'the 400s came from nginx, not the connector');
    $s->close(1000, 'bye');
    ok(wait_until(sub { !entry('s1') }, 3), 's1 unregistered');
    like(error_log_since_start(), qr/client sent no required SSL certificate/,
         'log: no required SSL certificate');
    like(error_log_since_start(), qr/client SSL certificate verify error/,
         'log: client certificate verify error');
}
--- no_error_log
[alert]
[crit]
reverse_mcp: refused
