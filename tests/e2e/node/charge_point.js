#!/usr/bin/env node
// A charge point made with the npm package ocpp-rpc (strict mode: every message in and out is checked against the
// OCPP 1.6 schemas). It runs a whole charging session through the gateway, then answers the CSMS's calls until it
// reads "close" on stdin. It reports on stdout, one JSON object per line:
//   {"event":"connected","protocol":"ocpp1.6"}
//   {"event":"session","responses":{...}}            the CSMS's answer to each of its calls
//   {"event":"handled","action":"Reset","params":{}} one per CSMS call it answered
//   {"event":"closed","code":1000,"handled":[...]}
//   {"event":"error","message":"..."}                then exit status 1
// Usage: node charge_point.js ENDPOINT IDENTITY PASSWORD   (ENDPOINT without the identity, e.g. ws://127.0.0.1:33033/ocpp)
'use strict';

const readline = require('node:readline');
const { RPCClient } = require('ocpp-rpc');

function report(event) {
    process.stdout.write(JSON.stringify(event) + '\n');
}

function lineFromStdin(expected) {
    const lines = readline.createInterface({ input: process.stdin });
    return new Promise((resolve) => {
        lines.on('line', (line) => {
            if (line.trim() === expected) {
                lines.close();
                process.stdin.destroy(); // or the open stdin keeps node running
                resolve();
            }
        });
        lines.on('close', resolve);
    });
}

function answerCsmsCalls(client, handled) {
    const answers = {
        RemoteStartTransaction: () => ({ status: 'Accepted' }),
        Reset: () => ({ status: 'Accepted' }),
        GetConfiguration: () => ({
            configurationKey: [{ key: 'HeartbeatInterval', readonly: false, value: '300' }],
            unknownKey: [],
        }),
    };
    for (const [action, answer] of Object.entries(answers)) {
        client.handle(action, ({ params }) => {
            handled.push({ action, params });
            report({ event: 'handled', action, params });
            return answer(params);
        });
    }
}

async function chargingSession(client) {
    const now = () => new Date().toISOString();
    const idTag = 'TAG-NODE';
    const responses = {};
    responses.BootNotification = await client.call('BootNotification', {
        chargePointVendor: 'ocpp-rpc', chargePointModel: 'e2e',
    });
    responses.StatusNotification = await client.call('StatusNotification', {
        connectorId: 1, errorCode: 'NoError', status: 'Available',
    });
    responses.Authorize = await client.call('Authorize', { idTag });
    responses.StartTransaction = await client.call('StartTransaction', {
        connectorId: 1, idTag, meterStart: 0, timestamp: now(),
    });
    const transactionId = responses.StartTransaction.transactionId;
    responses.MeterValues = await client.call('MeterValues', {
        connectorId: 1,
        transactionId,
        meterValue: [{
            timestamp: now(),
            sampledValue: [{ value: '1500', measurand: 'Energy.Active.Import.Register', unit: 'Wh' }],
        }],
    });
    responses.StopTransaction = await client.call('StopTransaction', {
        transactionId, idTag, meterStop: 1500, timestamp: now(), reason: 'Local',
    });
    responses.Heartbeat = await client.call('Heartbeat', {});
    return responses;
}

async function main() {
    const [endpoint, identity, password] = process.argv.slice(2);
    const client = new RPCClient({
        endpoint,
        identity,
        password,
        protocols: ['ocpp1.6'],
        strictMode: true,
        reconnect: false,
        callTimeoutMs: 15000,
    });
    const handled = [];
    answerCsmsCalls(client, handled);
    await client.connect();
    report({ event: 'connected', protocol: client.protocol });
    report({ event: 'session', responses: await chargingSession(client) });
    await lineFromStdin('close');
    const { code } = await client.close({ code: 1000, reason: 'done', awaitPending: true });
    report({ event: 'closed', code, handled });
}

main().catch((error) => {
    report({ event: 'error', message: String((error && error.stack) || error), details: error && error.details });
    process.exit(1);
});
