// Embeds WIT into a core module and wraps it as a component with jco's wasm-tools:
//   node component_new.mjs core.wasm policy.wit escrow out.component.wasm
import { componentEmbed, componentNew, componentWit } from '@bytecodealliance/jco-transpile/wasm-tools';
import { readFileSync, writeFileSync } from 'node:fs';
const [,, wasm, wit, world, out] = process.argv;
const embedded = await componentEmbed({ binary: readFileSync(wasm), witSource: readFileSync(wit, 'utf8'), world });
const comp = await componentNew(embedded);
writeFileSync(out, comp);
console.log('component bytes', comp.length);
console.log(await componentWit(comp));
