/**
 * The subset of the ONNX protobuf schema (onnx/onnx.proto, proto2) that an exported graph uses,
 * declared through protobufjs's reflection API: message and field names and field numbers as the
 * ONNX specification has them, so protobufjs does the wire encoding. Fields we never write
 * (sparse tensors, training info, functions, segments, external data) are left out: a decoder
 * skips unknown fields, and an encoder never emits absent ones. @internal
 */
import * as protobuf from 'protobufjs';
import { ValueError } from '../errors';

/** TensorProto.DataType values used here. */
export const DataType = { FLOAT: 1, INT64: 7 } as const;
/** AttributeProto.AttributeType values used here. */
export const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7 } as const;

// proto2: repeated scalars are unpacked unless the schema says [packed = true] (as TensorProto's
// *_data fields do); protobufjs follows the root's edition, proto2 by default.
const schema = {
  nested: {
    onnx: {
      nested: {
        AttributeProto: {
          fields: {
            name: { type: 'string', id: 1 },
            type: { type: 'int32', id: 20 },
            f: { type: 'float', id: 2 },
            i: { type: 'int64', id: 3 },
            s: { type: 'bytes', id: 4 },
            floats: { rule: 'repeated', type: 'float', id: 7 },
            ints: { rule: 'repeated', type: 'int64', id: 8 },
          },
        },
        ValueInfoProto: {
          fields: {
            name: { type: 'string', id: 1 },
            type: { type: 'TypeProto', id: 2 },
            docString: { type: 'string', id: 3 },
          },
        },
        NodeProto: {
          fields: {
            input: { rule: 'repeated', type: 'string', id: 1 },
            output: { rule: 'repeated', type: 'string', id: 2 },
            name: { type: 'string', id: 3 },
            opType: { type: 'string', id: 4 },
            domain: { type: 'string', id: 7 },
            attribute: { rule: 'repeated', type: 'AttributeProto', id: 5 },
            docString: { type: 'string', id: 6 },
          },
        },
        ModelProto: {
          fields: {
            irVersion: { type: 'int64', id: 1 },
            opsetImport: { rule: 'repeated', type: 'OperatorSetIdProto', id: 8 },
            producerName: { type: 'string', id: 2 },
            producerVersion: { type: 'string', id: 3 },
            domain: { type: 'string', id: 4 },
            modelVersion: { type: 'int64', id: 5 },
            docString: { type: 'string', id: 6 },
            graph: { type: 'GraphProto', id: 7 },
            metadataProps: { rule: 'repeated', type: 'StringStringEntryProto', id: 14 },
          },
        },
        StringStringEntryProto: {
          fields: {
            key: { type: 'string', id: 1 },
            value: { type: 'string', id: 2 },
          },
        },
        GraphProto: {
          fields: {
            node: { rule: 'repeated', type: 'NodeProto', id: 1 },
            name: { type: 'string', id: 2 },
            initializer: { rule: 'repeated', type: 'TensorProto', id: 5 },
            docString: { type: 'string', id: 10 },
            input: { rule: 'repeated', type: 'ValueInfoProto', id: 11 },
            output: { rule: 'repeated', type: 'ValueInfoProto', id: 12 },
            valueInfo: { rule: 'repeated', type: 'ValueInfoProto', id: 13 },
          },
        },
        TensorProto: {
          fields: {
            dims: { rule: 'repeated', type: 'int64', id: 1 },
            dataType: { type: 'int32', id: 2 },
            floatData: { rule: 'repeated', type: 'float', id: 4, options: { packed: true } },
            int64Data: { rule: 'repeated', type: 'int64', id: 7, options: { packed: true } },
            name: { type: 'string', id: 8 },
            docString: { type: 'string', id: 12 },
            // Little-endian element bytes: what we write (one copy, no per-element encoding).
            rawData: { type: 'bytes', id: 9 },
          },
        },
        TensorShapeProto: {
          fields: { dim: { rule: 'repeated', type: 'Dimension', id: 1 } },
          nested: {
            Dimension: {
              oneofs: { value: { oneof: ['dimValue', 'dimParam'] } },
              fields: {
                dimValue: { type: 'int64', id: 1 },
                dimParam: { type: 'string', id: 2 },
                denotation: { type: 'string', id: 3 },
              },
            },
          },
        },
        TypeProto: {
          oneofs: { value: { oneof: ['tensorType'] } },
          fields: {
            tensorType: { type: 'Tensor', id: 1 },
            denotation: { type: 'string', id: 6 },
          },
          nested: {
            Tensor: {
              fields: {
                elemType: { type: 'int32', id: 1 },
                shape: { type: 'TensorShapeProto', id: 2 },
              },
            },
          },
        },
        OperatorSetIdProto: {
          fields: {
            domain: { type: 'string', id: 1 },
            version: { type: 'int64', id: 2 },
          },
        },
      },
    },
  },
};

const root = protobuf.Root.fromJSON(schema);
/** onnx.ModelProto, for encoding an exported model and for reading one back (tests). */
export const ModelProto = root.lookupType('onnx.ModelProto');
const GraphProto = root.lookupType('onnx.GraphProto');
const TensorProto = root.lookupType('onnx.TensorProto');

/** protobuf's limit on one message (a larger ONNX model needs external data, which we do not write). */
const MAX_MESSAGE_BYTES = 2 ** 31 - 1;

/**
 * A ModelProto encoded as the consecutive parts of one file, without ever holding the model twice
 * or copying it in one blocking step (protobufjs encodes a nested message by copying it into its
 * parent, then shifting it behind its length: hundreds of MB for a base model, seconds with the
 * event loop stopped). Each initializer is encoded on its own, `between()` runs after each (to
 * yield, or to cancel), and the two length-delimited fields that hold them — the graph in the
 * model, each initializer in the graph — are framed with protobufjs's Writer: key (field number <<
 * 3 | 2) and byte length as varints, then the bytes. A message's fields may come in any order, so
 * the parts concatenate to the ModelProto that encoding `{ ...model, graph: { ...graph,
 * initializer } }` in one go would give, up to field order.
 */
export async function encodeModelParts(model: object, graph: object, initializers: readonly Initializer[], between: () => Promise<void>): Promise<Uint8Array[]> {
  const delimited = (fieldId: number, length: number): Uint8Array => protobuf.Writer.create().uint32((fieldId << 3) | 2).uint32(length).finish();
  const graphParts: Uint8Array[] = [GraphProto.encode(GraphProto.fromObject(graph)).finish()];
  let graphBytes = graphParts[0].length;
  for (const tensor of initializers) {
    const bytes = TensorProto.encode(TensorProto.fromObject(tensor)).finish();
    const key = delimited(GraphProto.fields.initializer.id, bytes.length);
    graphParts.push(key, bytes);
    graphBytes += key.length + bytes.length;
    if (graphBytes > MAX_MESSAGE_BYTES) throw new ValueError(`the model's weights exceed the 2 GiB an ONNX file can hold without external data (${tensor.name} and before)`);
    await between();
  }
  return [ModelProto.encode(ModelProto.fromObject(model)).finish(), delimited(ModelProto.fields.graph.id, graphBytes), ...graphParts];
}

// Plain-object shapes of the messages as this module writes them (protobufjs's camelCase names).
export interface Attribute {
  name: string;
  type: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  floats?: number[];
  ints?: number[];
}
export interface Node {
  input: string[];
  output: string[];
  name: string;
  opType: string;
  domain: string;
  attribute: Attribute[];
}
export interface Initializer {
  name: string;
  dims: number[];
  dataType: number;
  rawData: Uint8Array;
}
/** A dimension: a fixed size, or a named symbolic one (a dynamic axis). */
export type Dim = number | string;
export interface ValueInfo {
  name: string;
  type: { tensorType: { elemType: number; shape: { dim: ({ dimValue: number } | { dimParam: string })[] } } };
  docString?: string;
}

/** A float32 tensor's ValueInfoProto; string dims are dynamic axes. */
export function tensorValueInfo(name: string, dims: readonly Dim[], docString?: string): ValueInfo {
  const dim = dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d }));
  return { name, type: { tensorType: { elemType: DataType.FLOAT, shape: { dim } } }, ...(docString ? { docString } : {}) };
}
