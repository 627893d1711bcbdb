//! Stands in for the Keystead server in the memory test: it relays request frames from
//! its standard input to the enclave through the server's own client, and the reply
//! frames back to its standard output, holding in memory everything a server would hold
//! (envelopes, wallet records, signatures). The test then searches its memory.

use std::io::{Read, Write};

use keystead_enclave_client::{ClientConfig, EnclaveClient};
use keystead_enclave_proto::{
    LEN_PREFIX, ResponseFrame, decode_request, encode_response, frame_len,
};

fn main() -> anyhow::Result<()> {
    let socket = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: keystead-test-standin SOCKET"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = EnclaveClient::new(socket, ClientConfig::default());
    let mut held = Vec::new();
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    loop {
        let mut prefix = [0u8; LEN_PREFIX];
        if stdin.read_exact(&mut prefix).is_err() {
            return Ok(());
        }
        let mut body = vec![0u8; frame_len(prefix)?];
        stdin.read_exact(&mut body)?;
        let frame = decode_request(&body)?;
        let reply = runtime.block_on(client.call(frame.request))?;
        let bytes = encode_response(&ResponseFrame {
            id: frame.id,
            reply,
        })?;
        stdout.write_all(&bytes)?;
        stdout.flush()?;
        // Keep what a server keeps, so the search covers it.
        held.push(body);
        held.push(bytes);
    }
}
