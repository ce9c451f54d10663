#!/usr/bin/env node
// An OCPP 2.0.1 or 2.1 charge point made with the npm package ocpp-rpc in strict mode: every message in and out is
// checked against ocpp-rpc's own copies of that version's schemas. It runs a whole session through the gateway, then
// answers the CSMS's calls until it reads "close" on stdin. It reports on stdout, one JSON object per line, like
// charge_point.js: connected, session, handled (one per CSMS call), closed, or error (then exit status 1).
// Usage: node charge_point_v2.js ENDPOINT IDENTITY PASSWORD PROTOCOL   (PROTOCOL: ocpp2.0.1 or ocpp2.1)
'use strict';

const readline = require('node:readline');
const { RPCClient, createValidator } = require('ocpp-rpc');

// ocpp-rpc 2.2.1 ships the 2.1 schemas with the OCA ids (urn:BootNotificationRequest) but looks them up by the
// names it uses for the other versions (urn:BootNotification.req / .conf), so its strict mode cannot find any 2.1
// schema. Its own copies, renamed, make a validator that checks 2.1 as strictly as the others.
function ocpp21Validator() {
    const schemas = require('ocpp-rpc/lib/schemas/ocpp2_1.json').map((schema) => ({
        ...schema,
        $id: schema.$id.replace(/Request$/, '.req').replace(/Response$/, '.conf'),
    }));
    return createValidator('ocpp2.1', schemas);
}

function report(event) {
    process.stdout.write(JSON.stringify(event) + '\n');
}

function lineFromStdin(expected) {
    const lines = readline.createInterface({ input: process.stdin });
    return new Promise((resolve) => {
        lines.on('line', (line) => {
            if (line.trim() === expected) {
                lines.close();
                process.stdin.destroy();
                resolve();
            }
        });
        lines.on('close', resolve);
    });
}

const VARIABLE = { component: { name: 'OCPPCommCtrlr' }, variable: { name: 'HeartbeatInterval' } };

function answerCsmsCalls(client, handled) {
    const answers = {
        GetVariables: () => ({ getVariableResult: [{ attributeStatus: 'Accepted', attributeValue: '300', ...VARIABLE }] }),
        SetVariables: () => ({ setVariableResult: [{ attributeStatus: 'Accepted', ...VARIABLE }] }),
        RequestStartTransaction: () => ({ status: 'Accepted' }),
        Reset: () => ({ status: 'Accepted' }),
        TriggerMessage: () => ({ status: 'Accepted' }),
        GetBaseReport: () => ({ status: 'Accepted' }),
    };
    for (const [action, answer] of Object.entries(answers)) {
        client.handle(action, ({ params }) => {
            handled.push({ action, params });
            report({ event: 'handled', action, params });
            return answer(params);
        });
    }
}

async function session(client) {
    const now = () => new Date().toISOString();
    const idToken = { idToken: '04A2B3C4', type: 'ISO14443' };
    const meterValue = [{ timestamp: now(), sampledValue: [{ value: 1500 }] }];
    const transactionInfo = { transactionId: 'tx-node-1' };
    const r = {};
    r.BootNotification = await client.call('BootNotification', {
        reason: 'PowerUp', chargingStation: { model: 'e2e', vendorName: 'ocpp-rpc' },
    });
    r.StatusNotification = await client.call('StatusNotification', {
        timestamp: now(), connectorStatus: 'Available', evseId: 1, connectorId: 1,
    });
    r.Heartbeat = await client.call('Heartbeat', {});
    r.Authorize = await client.call('Authorize', { idToken });
    r.Started = await client.call('TransactionEvent', {
        eventType: 'Started', timestamp: now(), triggerReason: 'Authorized', seqNo: 0, transactionInfo, idToken,
        evse: { id: 1, connectorId: 1 },
    });
    r.MeterValues = await client.call('MeterValues', { evseId: 1, meterValue });
    r.Updated = await client.call('TransactionEvent', {
        eventType: 'Updated', timestamp: now(), triggerReason: 'MeterValuePeriodic', seqNo: 1, transactionInfo, meterValue,
    });
    r.Ended = await client.call('TransactionEvent', {
        eventType: 'Ended', timestamp: now(), triggerReason: 'StopAuthorized', seqNo: 2, transactionInfo,
    });
    r.NotifyReport = await client.call('NotifyReport', { requestId: 1, generatedAt: now(), seqNo: 0 });
    return r;
}

async function main() {
    const [endpoint, identity, password, protocol] = process.argv.slice(2);
    const client = new RPCClient({
        endpoint, identity, password, protocols: [protocol], strictMode: true, reconnect: false, callTimeoutMs: 15000,
        strictModeValidators: protocol === 'ocpp2.1' ? [ocpp21Validator()] : [],
    });
    const handled = [];
    answerCsmsCalls(client, handled);
    await client.connect();
    report({ event: 'connected', protocol: client.protocol });
    report({ event: 'session', responses: await session(client) });
    await lineFromStdin('close');
    const { code } = await client.close({ code: 1000, reason: 'done', awaitPending: true });
    report({ event: 'closed', code, handled });
}

main().catch((error) => {
    report({ event: 'error', message: String((error && error.stack) || error), details: error && error.details });
    process.exit(1);
});
