# reverse_mcp_client_cert_binding: with "on", a reverse server's verified
# client certificate must name the server it connects as (a subjectAltName
# dNSName, or the subject CN when the certificate has no dNSName; no
# wildcards), on top of its token.  nginx verifies the certificate
# (ssl_verify_client on | optional; with optional_no_ca the connector
# checks the verification result itself); the connector answers 403 with the
# reason, and logs it, when the name does not match, no certificate was
# sent, it did not verify, or the connection is not TLS.

use lib 't/lib';
use Test::Nginx::Socket;
use Test::Nginx::ReverseMCP;

master_on();
workers(2);

run_tests();

sub tool {
    return { name => 'echo', description => 'echo',
             inputSchema => { type => 'object' } };
}

# a reverse server on the TLS port, with the client certificate $cert of
# $ServRoot/client (undef: none)
sub tls_srv {
    my ($cert, %o) = @_;
    return Test::Nginx::ReverseMCP->new(
        port => $ServerPort2, ssl => 1, ssl_ca => "$CertDir/ca.crt",
        ssl_hostname => 'localhost', tools => [ tool() ], token => 't',
        $cert ? (ws_opts => { ssl_opts => {
            SSL_cert_file => "$ServRoot/client/$cert.crt",
            SSL_key_file => "$ServRoot/client/$cert.key" } }) : (),
        %o);
}

sub registered {
    my ($name) = @_;
    my ($a) = grep { $_->{name} eq 'a1' } @{ status_json()->{agents} };
    return grep { $_->{name} eq $name } @{ $a->{servers} };
}

__DATA__

=== TEST 1: the certificate must name the server: CN, SAN (which wins), no wildcards, unverified or missing certificates, plain HTTP
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 {
    server s1 token=t;
    server s2 token=t;
}
server {
    listen 127.0.0.1:$TEST_NGINX_SERVER_PORT2 ssl;
    server_name localhost;
    ssl_certificate $TEST_NGINX_CERT_DIR/server.crt;
    ssl_certificate_key $TEST_NGINX_CERT_DIR/server.key;
    ssl_client_certificate $TEST_NGINX_CERT_DIR/ca.crt;
    ssl_verify_client optional;

    location /ws {
        reverse_mcp_connector a1;
        reverse_mcp_client_cert_binding on;
    }
    location /ws-unbound {
        reverse_mcp_connector a1;
    }
}
server {
    listen 127.0.0.1:$TEST_NGINX_SERVER_PORT3 ssl;
    server_name localhost;
    ssl_certificate $TEST_NGINX_CERT_DIR/server.crt;
    ssl_certificate_key $TEST_NGINX_CERT_DIR/server.key;
    ssl_client_certificate $TEST_NGINX_CERT_DIR/ca.crt;
    ssl_verify_client optional_no_ca;

    location /ws {
        reverse_mcp_connector a1;
        reverse_mcp_client_cert_binding on;
    }
}
--- config
location = /status { reverse_mcp_status; }
location /ws { reverse_mcp_connector a1; reverse_mcp_client_cert_binding on; }
--- test_code
my $dir = "$ServRoot/client";
client_cert($dir, 'cn_s1', cn => 's1');
client_cert($dir, 'cn_s2', cn => 's2');
client_cert($dir, 'san_s1', cn => 'other', san => 'DNS:s1,DNS:s9');
client_cert($dir, 'san_other', cn => 's1', san => 'DNS:other');
client_cert($dir, 'wild', cn => 's*', san => 'DNS:*.s1,DNS:s*');
client_cert($dir, 'rogue_s1', cn => 's1', self_signed => 1);

for my $c ([ cn_s2 => 's1', 403, 'the client certificate does not name this server' ],
           [ san_other => 's1', 403, 'the client certificate does not name this server' ],
           [ wild => 's1', 403, 'the client certificate does not name this server' ],
           [ rogue_s1 => 's1', 403, 'the client certificate did not verify',
             port => $ServerPort3 ],
           [ undef, 's1', 403, 'a client certificate is required' ],
           [ cn_s1 => 's1', 401, 'wrong token', token => 'nope' ]) {
    my ($cert, $name, $status, $why, %o) = @$c;
    my $s = tls_srv($cert, name => $name, %o);
    is($s->connect, $status, ($cert // 'no certificate')
                             . " as $name: $status");
    like($s->ws->body, qr/\Q$why\E/, "... $why");
    $s->disconnect;
}
ok(!registered('s1'), 'nothing registered');

my $plain = Test::Nginx::ReverseMCP->new(port => $ServerPort, name => 's1',
                                         token => 't', tools => [ tool() ]);
is($plain->connect, 403, 'plain HTTP with the binding on: 403');
like($plain->ws->body, qr/the connection is not TLS/, '... not TLS');

my @ok;
for my $c ([ cn_s1 => 's1', '/ws' ], [ san_s1 => 's1', '/ws' ],
           [ cn_s2 => 's2', '/ws' ], [ cn_s2 => 's1', '/ws-unbound' ]) {
    my ($cert, $name, $path) = @$c;
    my $s = tls_srv($cert, name => $name, path => $path);
    is($s->connect, 101, "$cert as $name on $path: 101");
    ok($s->handshake(5), '... MCP handshake');
    ok(wait_until(sub { registered($name) }, 3), "... $name registered");
    $s->close(1000, 'bye');
    $s->pump(0.5);
    ok(wait_until(sub { !registered($name) }, 3), '... and gone');
}

my $log = error_log_since_start();
like($log, qr/refused server "s1": the client certificate does not name this server \(reverse_mcp_client_cert_binding\) \(403\)/,
     'log: the refusal, with the directive');
like($log, qr/refused server "s1": a client certificate is required \(reverse_mcp_client_cert_binding\), the connection is not TLS \(403\)/,
     'log: not TLS');
--- no_error_log
[alert]
[crit]



=== TEST 2: bad reverse_mcp_client_cert_binding value
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_client_cert_binding maybe;
--- config
--- must_die
--- error_log
invalid value "maybe" in "reverse_mcp_client_cert_binding" directive, it must be "on" or "off"
